//! ImageNet-style image folders: `train/<class>/*`, and `val/` either in class folders or flat
//! with a label map (`<file> <class>` per line). JPEG/PNG decode, resize, centre crop and
//! normalisation for evaluation; random-resized-crop and horizontal flip for training; batches
//! decoded on worker threads.

use std::path::{Path, PathBuf};

use image::imageops::FilterType;
use image::{DynamicImage, GenericImageView};
use rand::prelude::*;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

use crate::error::{DataError, fetch_hint, io_error, read_text};

/// A labelled list of image files.
#[derive(Clone, Debug)]
pub struct ImageFolder {
    /// Class names, sorted; a label is an index into this list.
    pub classes: Vec<String>,
    pub items: Vec<(PathBuf, usize)>,
}

fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "jpg" | "jpeg" | "png"))
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io_error(dir))?
        .map(|e| e.map(|e| e.path()).map_err(io_error(dir)))
        .collect::<Result<_, _>>()?;
    entries.sort();
    Ok(entries)
}

impl ImageFolder {
    /// `dir/<class>/<image>` (class = sub-folder name).
    pub fn from_class_folders(dir: &Path) -> Result<Self, DataError> {
        if !dir.is_dir() {
            return Err(DataError::Missing {
                path: dir.to_path_buf(),
                hint: fetch_hint("ImageNet", "https://image-net.org/download.php"),
            });
        }
        let class_dirs: Vec<PathBuf> = sorted_entries(dir)?
            .into_iter()
            .filter(|p| p.is_dir())
            .collect();
        let classes: Vec<String> = class_dirs
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().to_string())
            .collect();
        let mut items = Vec::new();
        for (label, class_dir) in class_dirs.iter().enumerate() {
            items.extend(
                sorted_entries(class_dir)?
                    .into_iter()
                    .filter(|p| is_image(p))
                    .map(|p| (p, label)),
            );
        }
        if items.is_empty() {
            return Err(DataError::Invalid {
                path: dir.to_path_buf(),
                reason: "no .jpg/.jpeg/.png images in class sub-folders (expected <dir>/<class>/<image>)".into(),
            });
        }
        Ok(Self { classes, items })
    }

    /// Images in one folder labelled by `labels` (`<file name> <class name>` per line), with
    /// the class list of the training set.
    pub fn from_label_map(
        dir: &Path,
        labels: &Path,
        classes: &[String],
    ) -> Result<Self, DataError> {
        let text = read_text(labels, || {
            "the flat validation layout needs a label map: `<file> <class>` per line".into()
        })?;
        let mut items = Vec::new();
        for (number, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let malformed = |reason: String| DataError::Malformed {
                path: labels.to_path_buf(),
                line: number + 1,
                reason,
            };
            let mut fields = line.split_whitespace();
            let (Some(file), Some(class), None) = (fields.next(), fields.next(), fields.next())
            else {
                return Err(malformed("expected `<file> <class>`".into()));
            };
            let label = classes
                .iter()
                .position(|c| c == class)
                .ok_or_else(|| malformed(format!("class `{class}` is not a training class")))?;
            let path = dir.join(file);
            if !path.exists() {
                return Err(malformed(format!("{} does not exist", path.display())));
            }
            items.push((path, label));
        }
        Ok(Self {
            classes: classes.to_vec(),
            items,
        })
    }

    /// `root/train` and `root/val`: `val/` in class folders, or flat (images directly in
    /// `val/`) with the label map `root/val_labels.txt`.
    pub fn train_val(root: &Path) -> Result<(Self, Self), DataError> {
        let train = Self::from_class_folders(&root.join("train"))?;
        let val_dir = root.join("val");
        let has_class_folders =
            val_dir.is_dir() && sorted_entries(&val_dir)?.iter().any(|p| p.is_dir());
        let val = if has_class_folders {
            let val = Self::from_class_folders(&val_dir)?;
            if val.classes != train.classes {
                return Err(DataError::Invalid {
                    path: val_dir,
                    reason: format!(
                        "validation classes {:?} differ from training classes {:?}",
                        val.classes, train.classes
                    ),
                });
            }
            val
        } else {
            Self::from_label_map(&val_dir, &root.join("val_labels.txt"), &train.classes)?
        };
        Ok((train, val))
    }
}

fn default_mean() -> Vec<f32> {
    vec![0.485, 0.456, 0.406]
}
fn default_std() -> Vec<f32> {
    vec![0.229, 0.224, 0.225]
}

/// Preprocessing: evaluation = resize the shorter side to `resize`, centre-crop `size`;
/// training = random-resized-crop to `size` (area 8–100 %, aspect 3/4–4/3) and a random flip.
/// Then scale to [0, 1] and normalise per channel.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageTransform {
    pub size: usize,
    pub resize: usize,
    /// 1 (grayscale) or 3 (RGB).
    pub channels: usize,
    #[serde(default = "default_mean")]
    pub mean: Vec<f32>,
    #[serde(default = "default_std")]
    pub std: Vec<f32>,
}

impl ImageTransform {
    /// ViT-B/16 on ImageNet: 224 crops of 256-resized images, ImageNet statistics.
    pub fn imagenet() -> Self {
        Self {
            size: 224,
            resize: 256,
            channels: 3,
            mean: default_mean(),
            std: default_std(),
        }
    }

    /// MNIST as 28 × 28 grayscale (mean 0.1307, std 0.3081).
    pub fn mnist() -> Self {
        Self {
            size: 28,
            resize: 28,
            channels: 1,
            mean: vec![0.1307],
            std: vec![0.3081],
        }
    }

    fn validate(&self) -> Result<(), DataError> {
        if !matches!(self.channels, 1 | 3)
            || self.mean.len() != self.channels
            || self.std.len() != self.channels
        {
            return Err(DataError::Config(format!(
                "image transform: channels must be 1 or 3 with as many mean/std entries, got {} / {:?} / {:?}",
                self.channels, self.mean, self.std
            )));
        }
        if self.size == 0 || self.resize < self.size {
            return Err(DataError::Config(format!(
                "image transform: need 0 < size ≤ resize, got {} and {}",
                self.size, self.resize
            )));
        }
        Ok(())
    }

    /// Decodes and preprocesses one image to `[C, size, size]` (row-major).
    pub fn apply(&self, path: &Path, augment: Option<&mut StdRng>) -> Result<Vec<f32>, DataError> {
        let image = image::open(path).map_err(|e| DataError::Invalid {
            path: path.to_path_buf(),
            reason: format!("cannot decode image: {e}"),
        })?;
        let size = self.size as u32;
        let cropped = match augment {
            Some(rng) => {
                let (x, y, w, h) = random_resized_crop(&image, rng);
                let mut out =
                    image
                        .crop_imm(x, y, w, h)
                        .resize_exact(size, size, FilterType::Triangle);
                if rng.random_bool(0.5) {
                    out = out.fliph();
                }
                out
            }
            None => {
                let (w, h) = image.dimensions();
                let scale = self.resize as f64 / w.min(h) as f64;
                let (rw, rh) = (
                    ((w as f64 * scale).round() as u32).max(size),
                    ((h as f64 * scale).round() as u32).max(size),
                );
                let resized = image.resize_exact(rw, rh, FilterType::Triangle);
                resized.crop_imm((rw - size) / 2, (rh - size) / 2, size, size)
            }
        };
        let pixels: Vec<u8> = if self.channels == 1 {
            cropped.to_luma8().into_raw()
        } else {
            cropped.to_rgb8().into_raw()
        };
        let (c, hw) = (self.channels, (size * size) as usize);
        let mut out = vec![0.0f32; c * hw];
        for (i, px) in pixels.chunks_exact(c).enumerate() {
            for ch in 0..c {
                out[ch * hw + i] = (px[ch] as f32 / 255.0 - self.mean[ch]) / self.std[ch];
            }
        }
        Ok(out)
    }
}

/// torchvision's `RandomResizedCrop` box: ten tries at a random area and aspect, then the
/// centre crop of the whole image.
fn random_resized_crop(image: &DynamicImage, rng: &mut StdRng) -> (u32, u32, u32, u32) {
    let (w, h) = image.dimensions();
    let area = (w * h) as f64;
    for _ in 0..10 {
        let target = area * rng.random_range(0.08..=1.0);
        let log_ratio = rng.random_range((3.0f64 / 4.0).ln()..=(4.0f64 / 3.0).ln());
        let ratio = log_ratio.exp();
        let cw = (target * ratio).sqrt().round() as u32;
        let ch = (target / ratio).sqrt().round() as u32;
        if cw > 0 && ch > 0 && cw <= w && ch <= h {
            return (
                rng.random_range(0..=w - cw),
                rng.random_range(0..=h - ch),
                cw,
                ch,
            );
        }
    }
    let side = w.min(h);
    ((w - side) / 2, (h - side) / 2, side, side)
}

/// A decoded batch: `images` is `[B, C, size, size]` row-major.
#[derive(Clone, Debug)]
pub struct ImageBatch {
    pub images: Vec<f32>,
    pub labels: Vec<usize>,
    pub shape: [usize; 4],
}

/// Decodes `indices` of `folder` on `workers` threads; with `augment_seed`, each image gets
/// its own RNG seeded from it and its index, so batches are reproducible whatever the threads.
pub fn load_batch(
    folder: &ImageFolder,
    indices: &[usize],
    transform: &ImageTransform,
    augment_seed: Option<u64>,
    workers: usize,
) -> Result<ImageBatch, DataError> {
    transform.validate()?;
    let per_image = transform.channels * transform.size * transform.size;
    let mut images = vec![0.0f32; indices.len() * per_image];
    let workers = workers.clamp(1, indices.len().max(1));
    let chunk = indices.len().div_ceil(workers).max(1);
    std::thread::scope(|scope| -> Result<(), DataError> {
        let handles: Vec<_> = images
            .chunks_mut(chunk * per_image)
            .zip(indices.chunks(chunk))
            .map(|(out, ids)| {
                scope.spawn(move || -> Result<(), DataError> {
                    for (slot, &index) in out.chunks_mut(per_image).zip(ids) {
                        let (path, _) = folder.items.get(index).ok_or_else(|| {
                            DataError::Config(format!(
                                "image index {index} out of range ({} images)",
                                folder.items.len()
                            ))
                        })?;
                        let mut rng = augment_seed.map(|seed| {
                            StdRng::seed_from_u64(
                                seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                            )
                        });
                        slot.copy_from_slice(&transform.apply(path, rng.as_mut())?);
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .try_for_each(|h| h.join().expect("image worker panicked"))
    })?;
    Ok(ImageBatch {
        images,
        labels: indices.iter().map(|&i| folder.items[i].1).collect(),
        shape: [
            indices.len(),
            transform.channels,
            transform.size,
            transform.size,
        ],
    })
}
