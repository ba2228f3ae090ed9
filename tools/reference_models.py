"""Golden fixtures for the model zoo crate (`crates/models`), made with HF transformers.

Regenerate (run from the repository root):

    python3 tools/reference_models.py

Needs `python3 -m pip install transformers safetensors` (plus torch and numpy).
For every family below this writes ``crates/models/tests/fixtures/<family>/``
holding exactly three files:

* ``config.json``        -- the HF config, as written by ``save_pretrained``;
* ``model.safetensors``  -- the weights (``save_pretrained(safe_serialization=True)``);
* ``golden.json``        -- inputs and outputs of the HF model in eval mode.

Models are tiny, randomly initialised (``torch.manual_seed`` per family), float32,
``model.eval()`` (dropout off) and use the eager attention implementation.
They use HF's own init, but with ``initializer_range=0.2`` (recorded in
config.json) instead of the default 0.02: at 0.02 the attention probabilities
are within ~10% of uniform and logits have std ~0.15, so e.g. a Llama port with
interleaved instead of half-split RoPE, or no RoPE at all, changes the logits by
only ~3e-3; at 0.2 the same bugs change them by ~5 (logit std ~1.4).
HF initialises LayerNorm/RMSNorm weights to 1, their biases to 0 and all other
biases to 0, which would let a Rust port that forgets them pass; so after init
every norm weight is set to ``1 + 0.1 * randn``, and every bias (norm or linear
or anything else whose parameter name ends in ``bias``) to ``0.1 * randn``.

golden.json layout: every array is a flat row-major list (floats with 9
significant digits, enough to round-trip float32; token ids as ints) with an
explicit ``<name>_shape`` list next to it, e.g. ``"logits"`` and
``"logits_shape"``.  It also records ``transformers_version``, ``torch_version``,
``family``, ``seed`` and ``keys`` -- the safetensors tensor names mapped to
their shapes, so the Rust loader can see the exact naming.

Families and outputs:

* gpt2            GPT2LMHeadModel: input_ids [2,17] -> logits [2,17,97]
* bert            BertForSequenceClassification (3 labels): input_ids,
                  token_type_ids, attention_mask [2,13] -> logits [2,3],
                  last_hidden_state [2,13,32] (= hidden_states[-1]),
                  pooler_output [2,32] (model.bert run separately),
                  mean_pooled [2,32] (sentence-transformers mean pooling over
                  tokens with attention_mask == 1, not normalised)
* bert_regression same config, num_labels=1, problem_type="regression":
                  same inputs -> logits [2,1]
* vit             ViTForImageClassification: pixel_values [2,1,28,28] ->
                  logits [2,10], encoder_output [2,17,32] (hidden_states[-1],
                  BEFORE the final layernorm), last_hidden_state [2,17,32]
                  (AFTER the final layernorm, what the classifier reads at
                  token 0)
* llama           LlamaForCausalLM (GQA 6 query / 2 kv heads, head_dim 8,
                  tied embeddings, default RoPE theta 1e5): input_ids [2,19] ->
                  logits [2,19,101]
"""

import json
import os
import shutil

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402
import transformers  # noqa: E402
from safetensors import safe_open  # noqa: E402
from transformers import (  # noqa: E402
    BertConfig,
    BertForSequenceClassification,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    ViTConfig,
    ViTForImageClassification,
)

torch.set_num_threads(1)

ROOT = os.path.join("crates", "models", "tests", "fixtures")
INIT_RANGE = 0.2  # HF default 0.02 gives near-uniform attention; see docstring


def flat(t):
    """Flat row-major list; floats rounded to 9 significant digits."""
    t = t.detach().cpu()
    if t.dtype.is_floating_point:
        return [float(f"{x:.9g}") for x in t.reshape(-1).double().tolist()]
    return [int(x) for x in t.reshape(-1).tolist()]


def put(d, name, t):
    d[name] = flat(t)
    d[name + "_shape"] = list(t.shape)


def perturb(model):
    """Non-trivial norm weights/biases and biases (HF inits them to 1/0)."""
    with torch.no_grad():
        done = set()
        for mod in model.modules():
            if "norm" in type(mod).__name__.lower():
                w = getattr(mod, "weight", None)
                if isinstance(w, torch.nn.Parameter):
                    w.copy_(1.0 + 0.1 * torch.randn_like(w))
                    done.add(id(w))
        for name, p in model.named_parameters():
            if name.endswith("bias") and id(p) not in done:
                p.copy_(0.1 * torch.randn_like(p))
                done.add(id(p))


def eager(config):
    config.initializer_range = INIT_RANGE
    config._attn_implementation = "eager"
    return config


def save(family, model, seed, golden):
    out = os.path.join(ROOT, family)
    if os.path.isdir(out):
        shutil.rmtree(out)
    os.makedirs(out)
    model.save_pretrained(out, safe_serialization=True)
    for f in os.listdir(out):
        if f not in ("config.json", "model.safetensors"):
            p = os.path.join(out, f)
            shutil.rmtree(p) if os.path.isdir(p) else os.remove(p)
    os.chmod(os.path.join(out, "model.safetensors"), 0o644)
    keys = {}
    with safe_open(os.path.join(out, "model.safetensors"), framework="pt") as f:
        for k in sorted(f.keys()):
            keys[k] = list(f.get_slice(k).get_shape())
    doc = {
        "family": family,
        "seed": seed,
        "initializer_range": INIT_RANGE,
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "keys": keys,
    }
    doc.update(golden)
    with open(os.path.join(out, "golden.json"), "w") as fh:
        json.dump(doc, fh, indent=1)
        fh.write("\n")
    print(f"wrote {out}")


def gpt2():
    seed = 1001
    torch.manual_seed(seed)
    cfg = eager(GPT2Config(
        vocab_size=97, n_positions=64, n_embd=32, n_layer=2, n_head=4,
        activation_function="gelu_new", resid_pdrop=0.1, embd_pdrop=0.1,
        attn_pdrop=0.1, layer_norm_epsilon=1e-5, tie_word_embeddings=True))
    model = GPT2LMHeadModel(cfg).float()
    perturb(model)
    model.eval()
    input_ids = torch.randint(0, 97, (2, 17))
    with torch.no_grad():
        logits = model(input_ids=input_ids).logits
    g = {}
    put(g, "input_ids", input_ids)
    put(g, "logits", logits)
    save("gpt2", model, seed, g)


def bert_inputs(vocab):
    b, t = 2, 13
    input_ids = torch.randint(1, vocab, (b, t))
    token_type_ids = torch.zeros(b, t, dtype=torch.long)
    token_type_ids[0, 6:] = 1  # sentence pair: 6 tokens of A, 7 of B
    attention_mask = torch.ones(b, t, dtype=torch.long)
    attention_mask[1, -4:] = 0  # last 4 positions are padding
    input_ids[1, -4:] = 0  # [PAD] id
    return input_ids, token_type_ids, attention_mask


def bert_config(**kw):
    return eager(BertConfig(
        vocab_size=101, hidden_size=32, num_hidden_layers=2,
        num_attention_heads=4, intermediate_size=64, hidden_act="gelu",
        max_position_embeddings=64, type_vocab_size=2, layer_norm_eps=1e-12,
        **kw))


def bert():
    seed = 2002
    torch.manual_seed(seed)
    model = BertForSequenceClassification(bert_config(num_labels=3)).float()
    perturb(model)
    model.eval()
    ids, tt, am = bert_inputs(101)
    with torch.no_grad():
        out = model(input_ids=ids, token_type_ids=tt, attention_mask=am,
                    output_hidden_states=True)
        base = model.bert(input_ids=ids, token_type_ids=tt, attention_mask=am)
    last = out.hidden_states[-1]
    assert torch.equal(last, base.last_hidden_state)
    m = am.unsqueeze(-1).float()
    mean = (last * m).sum(1) / m.sum(1).clamp(min=1e-9)
    g = {}
    put(g, "input_ids", ids)
    put(g, "token_type_ids", tt)
    put(g, "attention_mask", am)
    put(g, "logits", out.logits)
    put(g, "last_hidden_state", last)
    put(g, "pooler_output", base.pooler_output)
    put(g, "mean_pooled", mean)
    save("bert", model, seed, g)


def bert_regression():
    seed = 3003
    torch.manual_seed(seed)
    model = BertForSequenceClassification(
        bert_config(num_labels=1, problem_type="regression")).float()
    perturb(model)
    model.eval()
    ids, tt, am = bert_inputs(101)
    with torch.no_grad():
        out = model(input_ids=ids, token_type_ids=tt, attention_mask=am)
    g = {}
    put(g, "input_ids", ids)
    put(g, "token_type_ids", tt)
    put(g, "attention_mask", am)
    put(g, "logits", out.logits)
    save("bert_regression", model, seed, g)


def vit():
    seed = 4004
    torch.manual_seed(seed)
    cfg = eager(ViTConfig(
        image_size=28, patch_size=7, num_channels=1, hidden_size=32,
        num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        hidden_act="gelu", layer_norm_eps=1e-12, qkv_bias=True, num_labels=10))
    model = ViTForImageClassification(cfg).float()
    perturb(model)
    model.eval()
    pixel_values = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        out = model(pixel_values=pixel_values, output_hidden_states=True)
        base = model.vit(pixel_values=pixel_values)
    g = {}
    put(g, "pixel_values", pixel_values)
    put(g, "logits", out.logits)
    put(g, "encoder_output", out.hidden_states[-1])
    put(g, "last_hidden_state", base.last_hidden_state)
    save("vit", model, seed, g)


def llama():
    seed = 5005
    torch.manual_seed(seed)
    cfg = eager(LlamaConfig(
        vocab_size=101, hidden_size=48, intermediate_size=96,
        num_hidden_layers=2, num_attention_heads=6, num_key_value_heads=2,
        head_dim=8, rope_theta=100000.0, rms_norm_eps=1e-5,
        max_position_embeddings=64, tie_word_embeddings=True,
        hidden_act="silu", attention_bias=False, mlp_bias=False))
    rp = getattr(cfg, "rope_parameters", None)
    if rp is not None:  # transformers >= 5
        assert rp.get("rope_type", "default") == "default", rp
    assert getattr(cfg, "rope_scaling", None) in (None, {"rope_type": "default", "rope_theta": 100000.0}), cfg
    model = LlamaForCausalLM(cfg).float()
    perturb(model)
    model.eval()
    input_ids = torch.randint(0, 101, (2, 19))
    with torch.no_grad():
        logits = model(input_ids=input_ids).logits
    g = {"rope_theta": 100000.0}
    put(g, "input_ids", input_ids)
    put(g, "logits", logits)
    save("llama", model, seed, g)


if __name__ == "__main__":
    gpt2()
    bert()
    bert_regression()
    vit()
    llama()
