//! A small GGUF reader (llama.cpp's format, version 2 and 3): metadata, tensor table, and
//! dequantisation of F32, F16, BF16, Q8_0, Q4_0 and Q4_1 to f32.
//!
//! Layout (ggml `gguf.c`, and the `gguf` Python package's `quants.py`): a tensor's dims are
//! listed innermost first, so GGUF `[ne0, ne1]` is the row-major matrix `[ne1, ne0]`, which for
//! weights is torch's `[out, in]`. Quantised blocks of 32 run along `ne0`:
//! - Q8_0, 34 bytes: f16 scale `d`, 32 × i8 `q`; `x = d·q`.
//! - Q4_0, 18 bytes: f16 `d`, 16 bytes; `x[j] = d·((b[j] & 15) − 8)`, `x[j+16] = d·((b[j] >> 4) − 8)`.
//! - Q4_1, 20 bytes: f16 `d`, f16 `m`, 16 bytes; `x[j] = d·(b[j] & 15) + m`, `x[j+16] = d·(b[j] >> 4) + m`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::WeightError;

/// A metadata value.
#[derive(Clone, Debug, PartialEq)]
pub enum GgufValue {
    Uint(u64),
    Int(i64),
    Float(f64),
    Bool(bool),
    String(String),
    Array(Vec<GgufValue>),
}

impl GgufValue {
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Self::Uint(v) => Some(v),
            Self::Int(v) if v >= 0 => Some(v as u64),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Self::Float(v) => Some(v),
            Self::Uint(v) => Some(v as f64),
            Self::Int(v) => Some(v as f64),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_strings(&self) -> Option<Vec<String>> {
        match self {
            Self::Array(items) => items
                .iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect(),
            _ => None,
        }
    }
}

/// ggml tensor types this reader dequantises.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GgmlType {
    F32,
    F16,
    BF16,
    Q4_0,
    Q4_1,
    Q8_0,
}

impl GgmlType {
    fn from_id(id: u32) -> Option<Self> {
        Some(match id {
            0 => Self::F32,
            1 => Self::F16,
            2 => Self::Q4_0,
            3 => Self::Q4_1,
            8 => Self::Q8_0,
            30 => Self::BF16,
            _ => return None,
        })
    }

    /// `(elements per block, bytes per block)`.
    fn block(self) -> (usize, usize) {
        match self {
            Self::F32 => (1, 4),
            Self::F16 | Self::BF16 => (1, 2),
            Self::Q4_0 => (32, 18),
            Self::Q4_1 => (32, 20),
            Self::Q8_0 => (32, 34),
        }
    }
}

/// Where a tensor's data is and how it is stored.
#[derive(Clone, Debug)]
pub struct TensorInfo {
    /// ggml order: innermost first.
    pub dims: Vec<usize>,
    pub kind: GgmlType,
    offset: usize,
}

impl TensorInfo {
    /// Row-major shape, outermost first (torch order).
    pub fn shape(&self) -> Vec<usize> {
        self.dims.iter().rev().copied().collect()
    }

    pub fn len(&self) -> usize {
        self.dims.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A parsed GGUF file, held in memory.
pub struct GgufFile {
    path: PathBuf,
    pub metadata: BTreeMap<String, GgufValue>,
    pub tensors: BTreeMap<String, TensorInfo>,
    bytes: Vec<u8>,
    data_start: usize,
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
    path: &'a Path,
}

impl Cursor<'_> {
    fn corrupt(&self, reason: impl Into<String>) -> WeightError {
        WeightError::CorruptGguf {
            path: self.path.to_path_buf(),
            reason: format!("byte {}: {}", self.at, reason.into()),
        }
    }

    fn take(&mut self, n: usize) -> Result<&[u8], WeightError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| self.corrupt("truncated file"))?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], WeightError> {
        Ok(self.take(N)?.try_into().expect("length checked"))
    }

    fn u32(&mut self) -> Result<u32, WeightError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, WeightError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn length(&mut self) -> Result<usize, WeightError> {
        let n = self.u64()?;
        usize::try_from(n)
            .ok()
            .filter(|&n| n <= self.bytes.len())
            .ok_or_else(|| self.corrupt(format!("implausible length {n}")))
    }

    fn string(&mut self) -> Result<String, WeightError> {
        let n = self.length()?;
        let bytes = self.take(n)?.to_vec();
        String::from_utf8(bytes).map_err(|_| self.corrupt("string is not UTF-8"))
    }

    fn value(&mut self, kind: u32) -> Result<GgufValue, WeightError> {
        Ok(match kind {
            0 => GgufValue::Uint(self.array::<1>()?[0] as u64),
            1 => GgufValue::Int(self.array::<1>()?[0] as i8 as i64),
            2 => GgufValue::Uint(u16::from_le_bytes(self.array()?) as u64),
            3 => GgufValue::Int(i16::from_le_bytes(self.array()?) as i64),
            4 => GgufValue::Uint(self.u32()? as u64),
            5 => GgufValue::Int(i32::from_le_bytes(self.array()?) as i64),
            6 => GgufValue::Float(f32::from_le_bytes(self.array()?) as f64),
            7 => GgufValue::Bool(self.array::<1>()?[0] != 0),
            8 => GgufValue::String(self.string()?),
            9 => {
                let item_kind = self.u32()?;
                let n = self.length()?;
                GgufValue::Array(
                    (0..n)
                        .map(|_| self.value(item_kind))
                        .collect::<Result<_, _>>()?,
                )
            }
            10 => GgufValue::Uint(self.u64()?),
            11 => GgufValue::Int(i64::from_le_bytes(self.array()?)),
            12 => GgufValue::Float(f64::from_le_bytes(self.array()?)),
            other => return Err(self.corrupt(format!("unknown metadata type {other}"))),
        })
    }
}

impl GgufFile {
    pub fn open(path: impl AsRef<Path>) -> Result<Self, WeightError> {
        let path = path.as_ref().to_path_buf();
        let bytes = std::fs::read(&path).map_err(|source| WeightError::Io {
            path: path.clone(),
            source,
        })?;
        let mut cursor = Cursor {
            bytes: &bytes,
            at: 0,
            path: &path,
        };
        if cursor.take(4)? != b"GGUF" {
            return Err(cursor.corrupt("not a GGUF file (bad magic)"));
        }
        let version = cursor.u32()?;
        if !(2..=3).contains(&version) {
            return Err(cursor.corrupt(format!("GGUF version {version} is not supported (2 or 3)")));
        }
        let tensor_count = cursor.length()?;
        let metadata_count = cursor.length()?;
        let mut metadata = BTreeMap::new();
        for _ in 0..metadata_count {
            let key = cursor.string()?;
            let kind = cursor.u32()?;
            metadata.insert(key, cursor.value(kind)?);
        }
        let mut tensors = BTreeMap::new();
        for _ in 0..tensor_count {
            let name = cursor.string()?;
            let rank = cursor.u32()? as usize;
            let dims = (0..rank)
                .map(|_| cursor.length())
                .collect::<Result<Vec<_>, _>>()?;
            let type_id = cursor.u32()?;
            let kind = GgmlType::from_id(type_id).ok_or_else(|| WeightError::UnsupportedDtype {
                path: path.clone(),
                name: name.clone(),
                dtype: format!("ggml type {type_id} (supported: F32, F16, BF16, Q4_0, Q4_1, Q8_0)"),
            })?;
            let offset = cursor.length()?;
            tensors.insert(name, TensorInfo { dims, kind, offset });
        }
        let alignment = metadata
            .get("general.alignment")
            .and_then(GgufValue::as_u64)
            .unwrap_or(32);
        let data_start = usize::try_from(alignment)
            .ok()
            .filter(|&a| a > 0)
            .and_then(|a| cursor.at.div_ceil(a).checked_mul(a))
            .ok_or_else(|| cursor.corrupt(format!("general.alignment {alignment} is unusable")))?;
        let file = Self {
            path,
            metadata,
            tensors,
            bytes,
            data_start,
        };
        for (name, info) in &file.tensors {
            let (per_block, block_bytes) = info.kind.block();
            // Checked: the dims and offset come from the file, and their product may overflow.
            let end = info
                .dims
                .iter()
                .try_fold(1usize, |n, &d| n.checked_mul(d))
                .filter(|n| n % per_block == 0)
                .and_then(|n| (n / per_block).checked_mul(block_bytes))
                .and_then(|n| n.checked_add(info.offset)?.checked_add(file.data_start));
            if end.is_none_or(|end| end > file.bytes.len()) {
                return Err(WeightError::CorruptGguf {
                    path: file.path.clone(),
                    reason: format!(
                        "tensor `{name}` runs past the end of the file or splits a block"
                    ),
                });
            }
        }
        Ok(file)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A metadata value, or an error naming the key.
    pub fn get(&self, key: &str) -> Result<&GgufValue, WeightError> {
        self.metadata.get(key).ok_or_else(|| WeightError::Config {
            path: self.path.clone(),
            reason: format!("GGUF metadata has no `{key}`"),
        })
    }

    /// Dequantised values of `name` in row-major order, with its torch-order shape.
    pub fn tensor_f32(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>), WeightError> {
        let info = self.tensors.get(name).ok_or_else(|| WeightError::Missing {
            path: self.path.clone(),
            name: name.to_string(),
            expected: Vec::new(),
        })?;
        let (per_block, block_bytes) = info.kind.block();
        let start = self.data_start + info.offset;
        let raw = &self.bytes[start..start + info.len() / per_block * block_bytes];
        Ok((info.shape(), dequantize(info.kind, raw)))
    }
}

fn f16(bytes: &[u8]) -> f32 {
    half::f16::from_le_bytes([bytes[0], bytes[1]]).to_f32()
}

/// Dequantises a run of whole blocks.
pub fn dequantize(kind: GgmlType, raw: &[u8]) -> Vec<f32> {
    match kind {
        GgmlType::F32 => raw
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        GgmlType::F16 => raw.chunks_exact(2).map(f16).collect(),
        GgmlType::BF16 => raw
            .chunks_exact(2)
            .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        GgmlType::Q8_0 => raw
            .chunks_exact(34)
            .flat_map(|block| {
                let d = f16(&block[..2]);
                block[2..].iter().map(move |&q| d * (q as i8) as f32)
            })
            .collect(),
        GgmlType::Q4_0 => four_bit_blocks(raw, 2, |block, q| f16(&block[..2]) * (q as f32 - 8.0)),
        GgmlType::Q4_1 => four_bit_blocks(raw, 4, |block, q| {
            f16(&block[..2]) * q as f32 + f16(&block[2..4])
        }),
    }
}

/// 4-bit blocks of 32: a `header` of scales, then 16 bytes whose low nibbles are elements 0–15
/// and high nibbles elements 16–31.
fn four_bit_blocks(raw: &[u8], header: usize, value: impl Fn(&[u8], u8) -> f32) -> Vec<f32> {
    let mut out = Vec::with_capacity(raw.len() / (header + 16) * 32);
    for block in raw.chunks_exact(header + 16) {
        let nibbles = &block[header..];
        out.extend(nibbles.iter().map(|&b| value(block, b & 15)));
        out.extend(nibbles.iter().map(|&b| value(block, b >> 4)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::GgufFile;

    /// A GGUF v3 header with one `u32` metadata entry and one F32 tensor of `dims`.
    fn file(alignment: u32, dims: &[u64]) -> Vec<u8> {
        let mut bytes = b"GGUF".to_vec();
        bytes.extend(3u32.to_le_bytes());
        bytes.extend(1u64.to_le_bytes()); // tensors
        bytes.extend(1u64.to_le_bytes()); // metadata entries
        let key = b"general.alignment";
        bytes.extend((key.len() as u64).to_le_bytes());
        bytes.extend(key);
        bytes.extend(4u32.to_le_bytes()); // type: u32
        bytes.extend(alignment.to_le_bytes());
        bytes.extend(1u64.to_le_bytes());
        bytes.extend(b"w");
        bytes.extend((dims.len() as u32).to_le_bytes());
        for d in dims {
            bytes.extend(d.to_le_bytes());
        }
        bytes.extend(0u32.to_le_bytes()); // F32
        bytes.extend(0u64.to_le_bytes()); // offset
        bytes.resize(bytes.len().div_ceil(32) * 32 + 16, 0); // 4 floats of data
        bytes
    }

    fn open(name: &str, bytes: &[u8]) -> Result<GgufFile, String> {
        let dir = std::env::temp_dir().join(format!("hedgehog-gguf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{}.gguf", name.replace(' ', "-")));
        std::fs::write(&path, bytes).unwrap();
        let result = GgufFile::open(&path).map_err(|e| e.to_string());
        std::fs::remove_file(&path).ok();
        result
    }

    #[test]
    fn a_well_formed_file_opens_and_damaged_ones_say_they_are_not_valid_gguf() {
        let good = file(32, &[2, 2]);
        assert_eq!(
            open("good", &good).unwrap().tensors["w"].shape(),
            vec![2, 2]
        );
        let cases: [(&str, Vec<u8>); 5] = [
            ("bad magic", [b"GGUX", &good[4..]].concat()),
            ("truncated", good[..good.len() / 2].to_vec()),
            ("alignment 0", file(0, &[2, 2])),
            ("dims whose product overflows", file(32, &[100; 10])),
            ("data past the end", file(32, &[64, 64])),
        ];
        for (what, bytes) in cases {
            let err = open(what, &bytes).err().expect(what);
            assert!(err.contains("not a valid GGUF file"), "{what}: {err}");
            assert!(!err.contains("safetensors"), "{what}: {err}");
        }
    }
}
