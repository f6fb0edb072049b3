//! Finding and summarising recordings for `lpexec sessions` (read with the caller's own
//! permissions: root and the audit group see everything, others what they may read).

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use super::asciicast::Header;
use super::seal::Seal;
use crate::common::session;

/// One recording as listed.
#[derive(Debug, Clone)]
pub struct Entry {
    pub id: String,
    pub path: PathBuf,
    pub header: Option<Header>,
    pub seal: Option<Seal>,
}

/// What a scan found.
#[derive(Debug, Default)]
pub struct Scan {
    pub entries: Vec<Entry>,
    /// Recordings or directories the caller may not read.
    pub unreadable: usize,
}

fn read_header(path: &Path) -> std::io::Result<Option<Header>> {
    let f = std::fs::File::open(path)?;
    let mut line = String::new();
    BufReader::new(f.take(256 * 1024)).read_line(&mut line)?;
    Ok(serde_json::from_str(&line).ok())
}

fn read_seal(path: &Path) -> Option<Seal> {
    let mut s = String::new();
    std::fs::File::open(path).ok()?.take(256 * 1024).read_to_string(&mut s).ok()?;
    serde_json::from_str(&s).ok()
}

fn numeric_dirs(p: &Path, scan: &mut Scan) -> Vec<PathBuf> {
    match std::fs::read_dir(p) {
        Ok(rd) => {
            let mut v: Vec<PathBuf> = rd
                .flatten()
                .filter(|e| {
                    e.file_name()
                        .to_str()
                        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                })
                .map(|e| e.path())
                .collect();
            v.sort();
            v
        }
        Err(_) => {
            scan.unreadable += 1;
            Vec::new()
        }
    }
}

/// Every recording under `dir` (`{dir}/YYYY/MM/DD/*.cast`), oldest first.
pub fn scan(dir: &Path) -> Result<Scan, String> {
    let mut scan = Scan::default();
    if let Err(e) = std::fs::read_dir(dir) {
        return Err(format!("cannot read the recordings directory {}: {e}", dir.display()));
    }
    for y in numeric_dirs(dir, &mut scan) {
        for m in numeric_dirs(&y, &mut scan) {
            for d in numeric_dirs(&m, &mut scan) {
                let Ok(rd) = std::fs::read_dir(&d) else {
                    scan.unreadable += 1;
                    continue;
                };
                for e in rd.flatten() {
                    let name = e.file_name();
                    let Some(id) = name.to_str().and_then(|n| n.strip_suffix(".cast")) else { continue };
                    if !session::is_valid_id(id) {
                        continue;
                    }
                    let path = e.path();
                    match read_header(&path) {
                        Ok(header) => scan.entries.push(Entry {
                            id: id.to_string(),
                            seal: read_seal(&path.with_extension("json")),
                            header,
                            path,
                        }),
                        Err(_) => scan.unreadable += 1,
                    }
                }
            }
        }
    }
    scan.entries.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(scan)
}
