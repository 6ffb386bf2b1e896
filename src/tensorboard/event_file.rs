//! TensorBoard's event file, written by hand: no maintained Rust crate writes it (the ones on
//! crates.io pin protobuf 2 or need `protoc`), and the part we need is small and stable —
//! TFRecord framing (length, masked CRC-32C of the length, data, masked CRC-32C of the data)
//! around `Event` protos holding one `Summary.Value.simple_value` each. The bytes equal those
//! of TensorBoard's own `RecordWriter` for the same events (a test compares them with a file it
//! wrote, `tests/fixtures/tensorboard_reference.tfevents`).
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// TFRecord's CRC mask: rotate right by 15 and add a constant (`record_writer.py`).
fn masked_crc(bytes: &[u8]) -> u32 {
    let c = crc32c::crc32c(bytes);
    c.rotate_right(15).wrapping_add(0xA282_EAD8)
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn bytes_field(out: &mut Vec<u8>, key: u8, bytes: &[u8]) {
    out.push(key);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// An `Event` proto: `wall_time` (1, double), `step` (2, varint; omitted when 0 as proto3
/// does), then `file_version` (3) or `summary` (5) holding one `Value{tag (1), simple_value
/// (2, float)}`.
fn event(wall_time: f64, step: u64, body: Body<'_>) -> Vec<u8> {
    let mut e = vec![0x09];
    e.extend_from_slice(&wall_time.to_le_bytes());
    if step != 0 {
        e.push(0x10);
        varint(&mut e, step);
    }
    match body {
        Body::FileVersion(v) => bytes_field(&mut e, 0x1A, v.as_bytes()),
        Body::Scalar(tag, value) => {
            let mut v = Vec::new();
            bytes_field(&mut v, 0x0A, tag.as_bytes());
            v.push(0x15);
            v.extend_from_slice(&value.to_le_bytes());
            let mut summary = Vec::new();
            bytes_field(&mut summary, 0x0A, &v);
            bytes_field(&mut e, 0x2A, &summary);
        }
    }
    e
}

enum Body<'a> {
    FileVersion(&'a str),
    Scalar(&'a str, f32),
}

/// One TFRecord: `u64le len | masked crc(len) | data | masked crc(data)`.
fn record(data: &[u8]) -> Vec<u8> {
    let len = (data.len() as u64).to_le_bytes();
    let mut r = Vec::with_capacity(data.len() + 16);
    r.extend_from_slice(&len);
    r.extend_from_slice(&masked_crc(&len).to_le_bytes());
    r.extend_from_slice(data);
    r.extend_from_slice(&masked_crc(data).to_le_bytes());
    r
}

/// An open event file.
pub struct EventWriter {
    path: PathBuf,
    out: BufWriter<File>,
}

impl EventWriter {
    /// Creates `DIR/events.out.tfevents.{secs}.{host}.{pid}.mgrpo` (the name TensorBoard
    /// looks for) and writes the file-version event.
    pub fn create(dir: &Path, wall_time: f64) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let host = std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "localhost".into());
        let name = format!(
            "events.out.tfevents.{}.{host}.{}.mgrpo",
            wall_time as u64,
            std::process::id()
        );
        let path = dir.join(name);
        let mut w = Self {
            out: BufWriter::new(File::create(&path)?),
            path,
        };
        w.write(&event(wall_time, 0, Body::FileVersion("brain.Event:2")))?;
        Ok(w)
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn write(&mut self, event: &[u8]) -> std::io::Result<()> {
        self.out.write_all(&record(event))
    }

    /// Appends one scalar (TensorBoard stores `simple_value` as f32).
    pub fn scalar(
        &mut self,
        tag: &str,
        step: u64,
        value: f64,
        wall_time: f64,
    ) -> std::io::Result<()> {
        self.write(&event(wall_time, step, Body::Scalar(tag, value as f32)))
    }

    /// Flushes to disk, so a TensorBoard watching the directory sees the step.
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The events of `tests/fixtures/tensorboard_reference.py`, in our encoding, byte for byte
    /// equal to what TensorBoard's `RecordWriter` wrote for them.
    #[test]
    fn bytes_equal_tensorboards_own_writer() {
        let wall = 1_700_000_000.25;
        let mut ours = record(&event(wall, 0, Body::FileVersion("brain.Event:2")));
        for (step, tag, v) in [
            (0u64, "train/reward", 0.5f32),
            (1, "train/reward", -1.25),
            (300, "main/loss", 3.0e-8),
            (70000, "dev/accuracy", 0.515),
        ] {
            ours.extend(record(&event(
                wall + step as f64,
                step,
                Body::Scalar(tag, v),
            )));
        }
        let theirs = include_bytes!("../../tests/fixtures/tensorboard_reference.tfevents");
        assert_eq!(ours.len(), theirs.len());
        assert!(
            ours == theirs,
            "event bytes differ from TensorBoard's writer"
        );
    }

    #[test]
    fn writer_writes_the_version_then_scalars() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = EventWriter::create(dir.path(), 1.0).unwrap();
        w.scalar("a/b", 3, 0.25, 2.0).unwrap();
        w.flush().unwrap();
        let bytes = std::fs::read(w.path()).unwrap();
        let first = record(&event(1.0, 0, Body::FileVersion("brain.Event:2")));
        let second = record(&event(2.0, 3, Body::Scalar("a/b", 0.25)));
        assert_eq!(bytes, [first, second].concat());
        let name = w.path().file_name().unwrap().to_string_lossy().to_string();
        assert!(name.starts_with("events.out.tfevents.1."), "{name}");
    }
}
