//! Image folders on the committed samples: class folders, the flat layout with a label map,
//! decoding PNG/JPEG in colour and grayscale, preprocessing values, reproducible augmentation.

use std::path::PathBuf;

use hedgehog_tasks::images::{ImageFolder, ImageTransform, load_batch};

fn samples(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../data/samples")
        .join(path)
}

fn small(channels: usize) -> ImageTransform {
    ImageTransform {
        size: 16,
        resize: 20,
        channels,
        mean: vec![0.5; channels],
        std: vec![0.25; channels],
    }
}

#[test]
fn class_folders_and_label_maps_give_the_same_classes() {
    let (train, val) = ImageFolder::train_val(&samples("images")).unwrap();
    assert_eq!(train.classes, ["cat", "dog", "hedgehog"]);
    assert_eq!(train.items.len(), 12);
    assert_eq!(val.items.len(), 6);
    let flat = ImageFolder::from_label_map(
        &samples("images/val_flat"),
        &samples("images/val_labels.txt"),
        &train.classes,
    )
    .unwrap();
    assert_eq!(flat.items.len(), 6);
    let mut labels: Vec<usize> = flat.items.iter().map(|(_, l)| *l).collect();
    labels.sort();
    assert_eq!(labels, [0, 0, 1, 1, 2, 2]);
    let (mnist, mnist_val) = ImageFolder::train_val(&samples("mnist")).unwrap();
    assert_eq!(
        mnist.classes,
        ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]
    );
    assert_eq!((mnist.items.len(), mnist_val.items.len()), (30, 10));
}

#[test]
fn batches_have_the_right_shape_values_and_reproducible_augmentation() {
    let (train, _) = ImageFolder::train_val(&samples("images")).unwrap();
    let all: Vec<usize> = (0..train.items.len()).collect();
    for channels in [1, 3] {
        let batch = load_batch(&train, &all, &small(channels), None, 3).unwrap();
        assert_eq!(batch.shape, [12, channels, 16, 16]);
        assert_eq!(batch.images.len(), 12 * channels * 256);
        assert_eq!(
            batch.labels,
            train.items.iter().map(|(_, l)| *l).collect::<Vec<_>>()
        );
        // (x/255 − 0.5)/0.25 lies in [−2, 2].
        assert!(batch.images.iter().all(|v| (-2.0..=2.0).contains(v)));
    }
    // One worker or four: the same pixels.
    let one = load_batch(&train, &all, &small(3), Some(7), 1).unwrap();
    let four = load_batch(&train, &all, &small(3), Some(7), 4).unwrap();
    assert_eq!(
        one.images, four.images,
        "augmentation does not depend on the worker split"
    );
    let other_seed = load_batch(&train, &all, &small(3), Some(8), 4).unwrap();
    assert_ne!(one.images, other_seed.images, "the seed changes the crops");
    let evaluation = load_batch(&train, &all, &small(3), None, 2).unwrap();
    assert_ne!(evaluation.images, one.images);
}

#[test]
fn mnist_digits_normalise_with_mnist_statistics() {
    let (train, _) = ImageFolder::train_val(&samples("mnist")).unwrap();
    let batch = load_batch(&train, &[0], &ImageTransform::mnist(), None, 1).unwrap();
    assert_eq!(batch.shape, [1, 1, 28, 28]);
    let background = (0.0 - 0.1307) / 0.3081;
    let dark = batch
        .images
        .iter()
        .filter(|v| (**v - background).abs() < 1e-6)
        .count();
    assert!(
        dark > 28 * 28 / 2,
        "most of a digit image is background ({dark} of 784)"
    );
}

#[test]
fn missing_and_broken_images_are_clear_errors() {
    let err = ImageFolder::train_val(&samples("no-such-dataset"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("not found") && err.contains("just fetch-data"),
        "{err}"
    );
    let dir = std::env::temp_dir().join(format!("hedgehog-images-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("train/a")).unwrap();
    std::fs::write(dir.join("train/a/broken.png"), b"not a png").unwrap();
    let folder = ImageFolder::from_class_folders(&dir.join("train")).unwrap();
    let err = load_batch(&folder, &[0], &small(3), None, 1)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("broken.png") && err.contains("cannot decode"),
        "{err}"
    );
    let bad = ImageTransform {
        channels: 2,
        ..small(3)
    };
    let err = load_batch(&folder, &[0], &bad, None, 1)
        .unwrap_err()
        .to_string();
    assert!(err.contains("channels must be 1 or 3"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}
