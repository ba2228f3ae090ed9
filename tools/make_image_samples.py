"""Writes data/samples/images/: simple deterministic PIL drawings in the class-folder and
flat-with-label-map layouts.

    python3 tools/make_image_samples.py
"""
import shutil
from pathlib import Path
from PIL import Image, ImageDraw

OUT = Path(__file__).resolve().parent.parent / "data" / "samples" / "images"
if OUT.exists():
    shutil.rmtree(OUT)

BG = [(200, 230, 255), (230, 245, 210), (250, 240, 220), (220, 220, 230), (255, 250, 250), (210, 235, 235)]


def draw(cls, k, size=(40, 30)):
    w, h = size
    im = Image.new("RGB", size, BG[k % len(BG)])
    d = ImageDraw.Draw(im)
    dx = (k * 3) % 7 - 3          # shift the figure a little per image
    cx, cy = w // 2 + dx, h // 2 + 2
    s = min(w, h) / 30.0
    if cls == "cat":              # orange round head, pointed ears, green eyes
        r = 9 * s
        d.polygon([(cx - r, cy - r * 0.3), (cx - r * 0.7, cy - r * 1.5), (cx - r * 0.1, cy - r * 0.8)], fill=(230, 130, 40))
        d.polygon([(cx + r, cy - r * 0.3), (cx + r * 0.7, cy - r * 1.5), (cx + r * 0.1, cy - r * 0.8)], fill=(230, 130, 40))
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=(240, 150, 50))
        for ex in (-3.5 * s, 3.5 * s):
            d.ellipse([cx + ex - 1.5 * s, cy - 3 * s, cx + ex + 1.5 * s, cy], fill=(60, 160, 60))
    elif cls == "dog":            # brown long head, floppy dark ears, black nose
        r = 8 * s
        d.ellipse([cx - r * 1.5, cy - r * 0.6, cx - r * 0.6, cy + r * 1.2], fill=(90, 55, 30))
        d.ellipse([cx + r * 0.6, cy - r * 0.6, cx + r * 1.5, cy + r * 1.2], fill=(90, 55, 30))
        d.ellipse([cx - r, cy - r * 1.1, cx + r, cy + r * 1.1], fill=(160, 110, 60))
        d.ellipse([cx - 2 * s, cy + 3 * s, cx + 2 * s, cy + 6 * s], fill=(20, 20, 20))
    else:                         # hedgehog: brown spiky half-dome, pale face on the right
        r = 11 * s
        spikes = []
        n = 11
        for i in range(n + 1):
            a = 3.14159 * i / n
            import math
            rr = r * (1.25 if i % 2 else 0.95)
            spikes.append((cx - math.cos(a) * rr, cy + 4 * s - math.sin(a) * rr))
        d.polygon(spikes, fill=(80, 60, 45))
        d.ellipse([cx + r * 0.55, cy - 1 * s, cx + r * 1.15, cy + 5 * s], fill=(225, 200, 160))
        d.ellipse([cx + r * 1.05, cy + 1 * s, cx + r * 1.25, cy + 2.5 * s], fill=(10, 10, 10))
    return im


n_val = 0
labels = []
for ci, cls in enumerate(["cat", "dog", "hedgehog"]):
    for j in range(4):
        k = ci * 6 + j
        p = OUT / "train" / cls
        p.mkdir(parents=True, exist_ok=True)
        if cls == "cat" and j == 3:                 # one 48x48 8-bit grayscale PNG
            draw(cls, k, (48, 48)).convert("L").save(p / f"{cls}_{j + 1:04d}.png")
        elif cls == "hedgehog" and j == 3:          # one JPEG, ImageNet-style extension
            draw(cls, k).save(p / f"{cls}_{j + 1:04d}.JPEG", quality=90)
        else:
            draw(cls, k).save(p / f"{cls}_{j + 1:04d}.png")
    for j in range(2):
        n_val += 1
        k = ci * 6 + 4 + j
        name = f"val_{n_val:04d}.png"
        for p in (OUT / "val" / cls, OUT / "val_flat"):
            p.mkdir(parents=True, exist_ok=True)
            draw(cls, k).save(p / name)
        labels.append(f"{name} {cls}\n")
(OUT / "val_labels.txt").write_text("".join(labels))
for f in sorted(OUT.rglob("*")):
    if f.is_file():
        try:
            im = Image.open(f); info = f"{im.format} {im.size} {im.mode}"
        except Exception:
            info = ""
        print(f.relative_to(OUT), f.stat().st_size, info)
