"""Writes the committed text samples again in the layout the Hugging Face Hub serves them.

The hub publishes WikiText (`Salesforce/wikitext`) and GLUE (`nyu-mll/glue`) as parquet files
written by pyarrow, so this script uses pyarrow too: the loaders are tested against files made
by the hub's own writer, not by ours.

- WikiText: `data/samples/wikitext/wiki.<split>.tokens` ->
  `data/samples/wikitext-parquet/<train|validation|test>-00000-of-00001.parquet`, one `text` row
  per line, as the `datasets` WikiText builder made them: a line with text is kept with its
  newline, a blank line becomes the empty string.
- GLUE: `data/samples/glue/<TASK>/*.tsv` -> `data/samples/glue-parquet/<config>/<split>-00000-of-00001.parquet`
  with the hub's column names (`sentence`, `premise`, ...), integer class labels in the hub's
  order, STS-B scores as float32 and an `idx` column.

Run from the repository root: `pip install pyarrow && python3 tools/make_parquet_samples.py`.
"""

import pathlib
import sys

import pyarrow as pa
import pyarrow.parquet as pq

ROOT = pathlib.Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "data" / "samples"

WIKITEXT_SPLITS = {"train": "train", "valid": "validation", "test": "test"}

# TSV folder -> (hub config, TSV columns (a, b, label), hub columns (a, b), classes).
GLUE = {
    "CoLA": ("cola", None, ("sentence", None), ["0", "1"]),
    "SST-2": ("sst2", ("sentence", None, "label"), ("sentence", None), ["0", "1"]),
    "MRPC": ("mrpc", ("#1 String", "#2 String", "Quality"), ("sentence1", "sentence2"), ["0", "1"]),
    "STS-B": ("stsb", ("sentence1", "sentence2", "score"), ("sentence1", "sentence2"), None),
    "QQP": ("qqp", ("question1", "question2", "is_duplicate"), ("question1", "question2"), ["0", "1"]),
    "MNLI": (
        "mnli",
        ("sentence1", "sentence2", "gold_label"),
        ("premise", "hypothesis"),
        ["entailment", "neutral", "contradiction"],
    ),
    "QNLI": ("qnli", ("question", "sentence", "label"), ("question", "sentence"), ["entailment", "not_entailment"]),
    "RTE": ("rte", ("sentence1", "sentence2", "label"), ("sentence1", "sentence2"), ["entailment", "not_entailment"]),
    "WNLI": ("wnli", ("sentence1", "sentence2", "label"), ("sentence1", "sentence2"), ["0", "1"]),
}

GLUE_SPLITS = {
    "train.tsv": "train",
    "dev.tsv": "validation",
    "dev_matched.tsv": "validation_matched",
    "dev_mismatched.tsv": "validation_mismatched",
}


def wikitext():
    out = SAMPLES / "wikitext-parquet"
    out.mkdir(exist_ok=True)
    for split, hub_split in WIKITEXT_SPLITS.items():
        text = (SAMPLES / "wikitext" / f"wiki.{split}.tokens").read_text(encoding="utf-8")
        rows = [line if line.strip() else "" for line in text.splitlines(keepends=True)]
        table = pa.table({"text": pa.array(rows, pa.string())})
        pq.write_table(table, out / f"{hub_split}-00000-of-00001.parquet")


def glue_rows(path, tsv_columns):
    text = path.read_text(encoding="utf-8").lstrip("\ufeff")
    lines = [line for line in text.split("\n") if line]
    if tsv_columns is None:  # CoLA: source, label, marker, sentence; no header
        return [(fields[3], None, fields[1]) for fields in (line.split("\t") for line in lines)]
    header = lines[0].split("\t")
    a, b, label = (header.index(c) if c else None for c in tsv_columns)
    rows = []
    for line in lines[1:]:
        fields = line.split("\t")
        rows.append((fields[a], fields[b] if b is not None else None, fields[label]))
    return rows


def glue():
    out = SAMPLES / "glue-parquet"
    for folder, (config, tsv_columns, (hub_a, hub_b), classes) in GLUE.items():
        (out / config).mkdir(parents=True, exist_ok=True)
        for tsv, hub_split in GLUE_SPLITS.items():
            path = SAMPLES / "glue" / folder / tsv
            if not path.exists():
                continue
            rows = glue_rows(path, tsv_columns)
            columns = {hub_a: pa.array([r[0] for r in rows], pa.string())}
            if hub_b:
                columns[hub_b] = pa.array([r[1] for r in rows], pa.string())
            if classes is None:
                columns["label"] = pa.array([float(r[2]) for r in rows], pa.float32())
            else:
                columns["label"] = pa.array([classes.index(r[2]) for r in rows], pa.int64())
            columns["idx"] = pa.array(range(len(rows)), pa.int32())
            pq.write_table(pa.table(columns), out / config / f"{hub_split}-00000-of-00001.parquet")


if __name__ == "__main__":
    if not (SAMPLES / "wikitext").is_dir():
        sys.exit(f"{SAMPLES / 'wikitext'} not found: run from a checkout of the repository")
    wikitext()
    glue()
    print(f"wrote {SAMPLES / 'wikitext-parquet'} and {SAMPLES / 'glue-parquet'}")
