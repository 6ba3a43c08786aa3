"""
Your own data: a corpus, interactions, queries and qrels read from files (JSON lines, CSV, TSV or Parquet) or a Hub
dataset, into the same tables the benchmark loaders return (see [`~modeling_lmindexer.data.corpora`]).

Every problem with a row (a missing field, an empty text, a duplicate id, an interaction or judgment naming an unknown
item) raises one [`DataFileError`] naming the file, the line (or row) and the id; with `skip_bad_rows=True` the row is
left out instead, and [`RowChecker.skipped`] counts it. A column missing from a file's header is never skipped.
"""

import csv
import json
import math
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from datasets import Dataset, load_dataset
from transformers.utils import logging

from .corpora import Qrels


logger = logging.get_logger(__name__)

TABLE_FORMATS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".tsv": "tsv", ".parquet": "parquet"}
QUERY_SPLITS = ("train", "test")
MIN_INTERACTIONS_PER_USER = 3
# Rows a skipping reader names in the log; the rest are only counted.
LOGGED_BAD_ROWS = 5


class DataFileError(ValueError):
    """A file (or Hub dataset) that cannot be used as given; the message names the file, line and id."""


@dataclass
class RowChecker:
    """
    What happens to a bad row of one source: a [`DataFileError`] naming `source` and the row's place, or, with
    `skip_bad_rows`, a count in `skipped` (the first few logged).
    """

    source: str
    skip_bad_rows: bool = False
    skipped: int = 0

    def bad_row(self, place: str, problem: str) -> None:
        message = f"{self.source}, {place}: {problem}"
        if not self.skip_bad_rows:
            raise DataFileError(f"{message} (--skip_bad_rows leaves such rows out)")
        self.skipped += 1
        if self.skipped <= LOGGED_BAD_ROWS:
            logger.warning(f"Skipping {message}")

    def log_summary(self) -> None:
        if self.skipped:
            logger.warning(f"{self.source}: skipped {self.skipped} bad row(s).")


@dataclass(frozen=True)
class TableSource:
    """
    Where a table is read from: a local file (`path`) or a Hub dataset (`hub_dataset`, with its config and split).

    Args:
        path (`str`, *optional*): A `.jsonl`/`.json` (JSON lines), `.csv`, `.tsv` or `.parquet` file.
        hub_dataset (`str`, *optional*): A dataset id for `datasets.load_dataset`.
        hub_config (`str`, *optional*): The Hub dataset's configuration.
        hub_split (`str`): The Hub dataset's split.
    """

    path: str | None = None
    hub_dataset: str | None = None
    hub_config: str | None = None
    hub_split: str = "train"

    def __post_init__(self):
        if (self.path is None) == (self.hub_dataset is None):
            raise ValueError("Give either a file or a Hub dataset (not both).")

    @property
    def name(self) -> str:
        """A short name for reports and output folders: the file's stem or the dataset id's last part."""
        return Path(self.path).stem if self.path is not None else self.hub_dataset.rsplit("/", 1)[-1]

    def __str__(self) -> str:
        if self.path is not None:
            return self.path
        return f"Hub dataset '{self.hub_dataset}' ({self.hub_config or 'default'} config, {self.hub_split} split)"


def _check_columns(source: TableSource, available: Collection[str], required: Sequence[str]) -> None:
    missing = [column for column in required if column not in available]
    if missing:
        raise DataFileError(
            f"{source}: no column {', '.join(repr(column) for column in missing)}; its columns are "
            f"{', '.join(repr(column) for column in available)}."
        )


def read_table_rows(source: TableSource, required_columns: Sequence[str]) -> Iterator[tuple[str, dict]]:
    """
    The rows of a table as `(place, row)`, `place` saying where the row is (`"line 3"`, `"row 3"`).

    A header without one of `required_columns` (CSV, TSV, Parquet, Hub datasets) raises at once; a JSON line
    without one is left to the caller's row checks, since JSON lines have no header.

    Raises:
        [`DataFileError`]: For an unreadable file, an unknown extension or a missing column.
    """
    if source.hub_dataset is not None:
        try:
            table = load_dataset(source.hub_dataset, source.hub_config, split=source.hub_split)
        except Exception as error:  # the Hub client, a missing config or split: one line naming the dataset
            raise DataFileError(f"{source}: cannot load it ({type(error).__name__}: {error}).") from None
        _check_columns(source, table.column_names, required_columns)
        yield from ((f"row {number}", row) for number, row in enumerate(table, start=1))
        return
    path = Path(source.path)
    table_format = TABLE_FORMATS.get(path.suffix.lower())
    if table_format is None:
        raise DataFileError(f"{source}: unknown file type '{path.suffix}'; use one of {', '.join(TABLE_FORMATS)}.")
    if not path.is_file():
        raise DataFileError(f"{source}: no such file.")
    if table_format == "parquet":
        import pyarrow.parquet

        try:
            table = pyarrow.parquet.read_table(path)
        except (OSError, ValueError) as error:  # pyarrow's ArrowIOError and ArrowInvalid
            raise DataFileError(f"{source}: cannot read it as Parquet ({error}).") from None
        _check_columns(source, table.column_names, required_columns)
        yield from ((f"row {number}", row) for number, row in enumerate(table.to_pylist(), start=1))
        return
    try:
        # utf-8-sig: spreadsheet exports start with a byte-order mark, which would otherwise join the first column.
        with path.open(encoding="utf-8-sig", newline="") as file:
            if table_format == "json":
                for number, line in enumerate(file, start=1):
                    if not line.strip():
                        continue
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError as error:
                        raise DataFileError(f"{source}, line {number}: not a JSON object ({error}).") from None
                    if not isinstance(row, dict):
                        raise DataFileError(f"{source}, line {number}: not a JSON object.")
                    yield f"line {number}", row
                return
            reader = csv.DictReader(file, delimiter="\t" if table_format == "tsv" else ",")
            if reader.fieldnames is None:
                raise DataFileError(f"{source}: empty file (no header line).")
            _check_columns(source, reader.fieldnames, required_columns)
            for row in reader:
                yield f"line {reader.line_num}", row
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise DataFileError(f"{source}: cannot read it ({type(error).__name__}: {error}).") from None


def complete_rows(
    source: TableSource, required_columns: Sequence[str], checker: RowChecker
) -> Iterator[tuple[str, dict]]:
    """[`read_table_rows`] without the rows that lack a required field, each reported to `checker`."""
    for place, row in read_table_rows(source, required_columns):
        missing = [column for column in required_columns if column not in row]
        if missing:
            checker.bad_row(place, f"no field {', '.join(repr(column) for column in missing)}")
        elif None in row:  # csv.DictReader's key for the fields past the header's (an unquoted separator in a text)
            checker.bad_row(place, f"{len(row[None])} more field(s) than the header's columns (quote the text?)")
        else:
            yield place, row


def _cell(row: dict, column: str) -> str:
    """The row's value in `column` as stripped text; `""` for a missing or null value."""
    value = row.get(column)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return " ".join(str(value).split())


@dataclass
class NamedCorpus:
    """
    A document table with the name reports give it: a benchmark's, or one read from a file or Hub dataset.

    Args:
        documents (`Dataset`): Columns `doc_id`, `text` and `category` (`""` when unknown), as the benchmark loaders
            return.
        name (`str`): The benchmark's name, or the source's short name (see [`TableSource.name`]).
        skipped_rows (`int`): Bad rows left out with `skip_bad_rows`.
    """

    documents: Dataset
    name: str
    skipped_rows: int = 0


def load_corpus_file(
    source: TableSource,
    id_column: str = "id",
    text_columns: Sequence[str] = ("text",),
    category_column: str | None = None,
    skip_bad_rows: bool = False,
) -> NamedCorpus:
    """
    Documents of your own: one row per document, its id in `id_column`, its text in `text_columns` (several are
    joined with spaces in the given order, empty ones left out, as the benchmarks join title and body) and
    optionally a category (for the AMI of the indexing report).

    Raises:
        [`DataFileError`]: For a missing column, an empty text, a duplicate id (naming the file, the line and the
            id), unless `skip_bad_rows`; or when no document is left.
    """
    if not text_columns:
        raise ValueError("text_columns: give at least one text column.")
    required = [id_column, *text_columns, *([category_column] if category_column else [])]
    checker = RowChecker(str(source), skip_bad_rows)
    documents: list[dict] = []
    first_place: dict[str, str] = {}
    for place, row in complete_rows(source, required, checker):
        doc_id = _cell(row, id_column)
        if not doc_id:
            checker.bad_row(place, f"empty id in '{id_column}'")
            continue
        if doc_id in first_place:
            checker.bad_row(place, f"duplicate id '{doc_id}' (first at {first_place[doc_id]})")
            continue
        text = " ".join(part for part in (_cell(row, column) for column in text_columns) if part)
        if not text:
            checker.bad_row(place, f"empty text for id '{doc_id}' (columns {', '.join(text_columns)})")
            continue
        first_place[doc_id] = place
        documents.append(
            {"doc_id": doc_id, "text": text, "category": _cell(row, category_column) if category_column else ""}
        )
    checker.log_summary()
    if not documents:
        raise DataFileError(f"{source}: no usable document.")
    return NamedCorpus(Dataset.from_list(documents), source.name, checker.skipped)


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def _timestamp(value: str) -> float | None:
    """A number, or an ISO 8601 date and time as seconds since the epoch; None for anything else."""
    try:
        return float(value)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None


@dataclass
class UserInteractions:
    """
    Interaction sequences read from a file.

    Args:
        sequences (`dict[str, list[str]]`): Item doc ids of every kept user in time order (ties keep file order).
        skipped_rows (`int`): Bad rows left out with `skip_bad_rows`.
        num_dropped_users (`int`): Users with fewer than 3 interactions, left out (leave-one-out needs 3).
        time_order (`str`): How the time order was obtained, for reports.
    """

    sequences: dict[str, list[str]]
    skipped_rows: int = 0
    num_dropped_users: int = 0
    time_order: str = ""


def load_interactions_file(
    path: str,
    item_ids: Collection[str],
    user_column: str = "user_id",
    item_column: str = "item_id",
    time_column: str | None = "timestamp",
    skip_bad_rows: bool = False,
) -> UserInteractions:
    """
    (user, item, timestamp) rows as every user's item sequence in time order, the items matched against `item_ids`
    (the corpus). Timestamps are numbers or ISO 8601 dates; interactions with equal timestamps keep the file order;
    without `time_column` the file order is the time order. Users with fewer than 3 interactions are left out (and
    counted).

    Raises:
        [`DataFileError`]: For a missing column, an empty user, an unknown item or a timestamp that is not one
            (naming the file, the line and the id), unless `skip_bad_rows`; or when no user is left.
    """
    source = TableSource(path=path)
    required = [user_column, item_column, *([time_column] if time_column else [])]
    checker = RowChecker(str(source), skip_bad_rows)
    known_items = set(item_ids)
    rows_by_user: dict[str, list[tuple[float, int, str]]] = {}
    for position, (place, row) in enumerate(complete_rows(source, required, checker)):
        user, item = _cell(row, user_column), _cell(row, item_column)
        if not user:
            checker.bad_row(place, f"empty user in '{user_column}'")
            continue
        if item not in known_items:
            checker.bad_row(place, f"item '{item}' of user '{user}' is not in the corpus")
            continue
        time = _timestamp(_cell(row, time_column)) if time_column else 0.0
        if time is None:
            checker.bad_row(
                place,
                f"timestamp '{_cell(row, time_column)}' of user '{user}' is neither a number nor an ISO 8601 date",
            )
            continue
        rows_by_user.setdefault(user, []).append((time, position, item))
    checker.log_summary()
    sequences = {user: [item for *_, item in sorted(rows)] for user, rows in rows_by_user.items()}
    kept = {user: items for user, items in sequences.items() if len(items) >= MIN_INTERACTIONS_PER_USER}
    num_dropped = len(sequences) - len(kept)
    if num_dropped:
        logger.warning(
            f"{path}: leaving out {num_dropped} of {len(sequences)} users with fewer than "
            f"{MIN_INTERACTIONS_PER_USER} interactions (leave-one-out needs {MIN_INTERACTIONS_PER_USER})."
        )
    if not kept:
        raise DataFileError(f"{path}: no user has {MIN_INTERACTIONS_PER_USER} or more interactions with known items.")
    time_order = (
        f"sorted by '{time_column}', equal timestamps in file order" if time_column else "file order (no time column)"
    )
    return UserInteractions(kept, checker.skipped, num_dropped, time_order)


@dataclass
class UserQueries:
    """
    Queries and judgments read from files.

    Args:
        queries (`Dataset`): Columns `query_id`, `text` and `split` (`"train"`, `"test"`, or `""` without a split
            column).
        qrels (`dict[str, dict[str, int]]`): `{query_id: {doc_id: grade}}`.
        skipped_rows (`dict[str, int]`): Bad rows left out with `skip_bad_rows`, per file name.
    """

    queries: Dataset
    qrels: Qrels
    skipped_rows: dict[str, int] = field(default_factory=dict)


def _read_qrels(path: str, query_ids: Collection[str], doc_ids: Collection[str], checker: RowChecker) -> Qrels:
    """TREC qrels (`query 0 doc grade`, whitespace-separated) or BEIR TSV (`query-id corpus-id score`, a header
    line allowed), told apart by the number of fields on each line."""
    known_queries, known_documents = set(query_ids), set(doc_ids)
    qrels: Qrels = {}
    first_line: dict[tuple[str, str], int] = {}
    try:
        lines = Path(path).read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise DataFileError(f"{path}: cannot read it ({type(error).__name__}: {error}).") from None
    for number, line in enumerate(lines, start=1):
        fields = line.split()
        if not fields:
            continue
        place = f"line {number}"
        if len(fields) == 4:
            query_id, _, doc_id, grade = fields
        elif len(fields) == 3:
            query_id, doc_id, grade = fields
        else:
            checker.bad_row(place, f"{len(fields)} fields; TREC qrels have 4, BEIR TSV 3")
            continue
        if not grade.lstrip("-").isdigit():
            if number == 1 and len(fields) == 3 and not _is_number(grade):
                continue  # a BEIR header, "query-id corpus-id score"
            checker.bad_row(place, f"grade '{grade}' of query '{query_id}' is not an integer")
            continue
        if query_id not in known_queries:
            checker.bad_row(place, f"query '{query_id}' is not in the queries file")
            continue
        if doc_id not in known_documents:
            checker.bad_row(place, f"document '{doc_id}' of query '{query_id}' is not in the corpus")
            continue
        if (query_id, doc_id) in first_line:
            checker.bad_row(
                place,
                f"a second grade of document '{doc_id}' for query '{query_id}' (first at line "
                f"{first_line[query_id, doc_id]})",
            )
            continue
        first_line[query_id, doc_id] = number
        qrels.setdefault(query_id, {})[doc_id] = int(grade)
    return qrels


def load_queries_files(
    queries_path: str,
    qrels_path: str,
    doc_ids: Collection[str],
    id_column: str = "id",
    text_column: str = "text",
    split_column: str | None = None,
    skip_bad_rows: bool = False,
) -> UserQueries:
    """
    Queries (one row each: id, text and optionally a split, `train` or `test`) and their judgments against the
    corpus `doc_ids`.

    Raises:
        [`DataFileError`]: For a missing column, an empty text, a duplicate id, a split other than train or test, or
            a judgment naming an unknown query or document (naming the file, the line and the id), unless
            `skip_bad_rows`; or when no query has a judgment.
    """
    source = TableSource(path=queries_path)
    required = [id_column, text_column, *([split_column] if split_column else [])]
    checker = RowChecker(str(source), skip_bad_rows)
    rows: list[dict] = []
    first_place: dict[str, str] = {}
    for place, row in complete_rows(source, required, checker):
        query_id, text = _cell(row, id_column), _cell(row, text_column)
        split = _cell(row, split_column).lower() if split_column else ""
        if not query_id:
            checker.bad_row(place, f"empty id in '{id_column}'")
        elif query_id in first_place:
            checker.bad_row(place, f"duplicate query id '{query_id}' (first at {first_place[query_id]})")
        elif not text:
            checker.bad_row(place, f"empty text for query '{query_id}'")
        elif split_column and split not in QUERY_SPLITS:
            checker.bad_row(place, f"split '{split}' of query '{query_id}' is not one of {', '.join(QUERY_SPLITS)}")
        else:
            first_place[query_id] = place
            rows.append({"query_id": query_id, "text": text, "split": split})
    checker.log_summary()
    qrels_checker = RowChecker(qrels_path, skip_bad_rows)
    qrels = _read_qrels(qrels_path, first_place, doc_ids, qrels_checker)
    qrels_checker.log_summary()
    if not any(grade > 0 for judgments in qrels.values() for grade in judgments.values()):
        raise DataFileError(f"{qrels_path}: no query has a relevant document in the corpus.")
    skipped = {Path(queries_path).name: checker.skipped, Path(qrels_path).name: qrels_checker.skipped}
    queries = Dataset.from_list(rows) if rows else Dataset.from_dict({"query_id": [], "text": [], "split": []})
    return UserQueries(queries, qrels, {path: count for path, count in skipped.items() if count})


__all__ = [
    "DataFileError",
    "RowChecker",
    "TableSource",
    "NamedCorpus",
    "UserInteractions",
    "UserQueries",
    "complete_rows",
    "load_corpus_file",
    "load_interactions_file",
    "load_queries_files",
    "read_table_rows",
]
