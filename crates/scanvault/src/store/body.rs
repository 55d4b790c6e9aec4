//! Raw report bodies as stored: compressed, with the SHA-256 of the bytes received, kept in
//! their own table outside the hot ones and served byte for byte (ADR 0002).

use anyhow::Context;
use std::io::Read;

use super::StoreError;

/// How new report bodies are stored (`scan_reports.encoding`). Bodies stored as `gzip` by
/// earlier versions are still read.
pub(crate) const BODY_ENCODING: &str = "zstd";

/// A report body as stored: compressed ([`BODY_ENCODING`]), and the SHA-256 of the bytes
/// received.
#[derive(Debug)]
pub struct StoredBody {
    pub(crate) compressed: Vec<u8>,
    pub(crate) sha256: String,
}

impl StoredBody {
    pub fn of(raw: &[u8]) -> Result<StoredBody, StoreError> {
        Ok(StoredBody {
            compressed: compress(raw).context("compressing the report")?,
            sha256: sha256_hex(raw),
        })
    }
}

/// Zstandard, level 1: fewer bytes than gzip's fast level for less CPU (ADR 0002). The
/// compression context (its tables) is kept per thread, not allocated for every report.
fn compress(raw: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::cell::RefCell;
    thread_local! {
        static ZSTD: RefCell<Option<zstd::bulk::Compressor<'static>>> = const { RefCell::new(None) };
    }
    ZSTD.with(|z| {
        let mut z = z.borrow_mut();
        let compressor = match z.as_mut() {
            Some(c) => c,
            None => z.insert(zstd::bulk::Compressor::new(1)?),
        };
        compressor.compress(raw)
    })
}

/// A stored body back to the bytes received, by its `encoding`.
pub(crate) fn decompress(encoding: &str, body: &[u8]) -> std::io::Result<Vec<u8>> {
    match encoding {
        "zstd" => zstd::stream::decode_all(body),
        "gzip" => {
            let mut out = Vec::with_capacity(body.len() * 8);
            flate2::read::GzDecoder::new(body).read_to_end(&mut out)?;
            Ok(out)
        }
        other => Err(std::io::Error::other(format!(
            "unknown report encoding {other}"
        ))),
    }
}

fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(b);
    d.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::{compress, decompress, BODY_ENCODING};
    use std::io::Write;

    fn samples() -> Vec<Vec<u8>> {
        let big: Vec<u8> = (0..300_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        vec![
            b"".to_vec(),
            b"{}".to_vec(),
            big,
            b"{\"again\": true}".to_vec(),
        ]
    }

    #[test]
    fn bodies_round_trip_and_reuse_the_compression_context() {
        for raw in samples() {
            let stored = compress(&raw).unwrap();
            // A zstd frame (RFC 8878), read back by its encoding.
            assert_eq!(&stored[..4], &[0x28, 0xb5, 0x2f, 0xfd]);
            assert_eq!(decompress(BODY_ENCODING, &stored).unwrap(), raw);
        }
    }

    #[test]
    fn gzip_bodies_of_earlier_versions_still_read() {
        for raw in samples() {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(&raw).unwrap();
            assert_eq!(decompress("gzip", &gz.finish().unwrap()).unwrap(), raw);
        }
        assert!(decompress("brotli", b"x").is_err());
    }
}
