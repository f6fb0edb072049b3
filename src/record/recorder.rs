//! The recorder: an [`Observer`](crate::exec::Observer) of the session that writes
//! `{dir}/{YYYY}/{MM}/{DD}/{session}.cast` as it happens and seals it at the end.
//!
//! Every event is one line written with one `write(2)` (never buffered), so a killed helper
//! leaves a file whose every line parses; if a write fails half-way (disk full) the file is
//! cut back to the last whole line. The SHA-256 of the file is computed as it is written, so
//! sealing costs nothing at the end.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use sha2::Digest;

use super::asciicast::{self, Header};
use super::mask::{MaskSet, Masker};
use super::seal::{self, Bytes, RecordingDigest, Seal};
use super::utf8;
use crate::common::config::{OnError, Recording};
use crate::common::session;
use crate::common::timefmt::Utc;
use crate::exec::{Observer, Stream};
use crate::system::fs::{self, TrustedDir};

/// Where a session's files go: the date directory, opened once (so it cannot be swapped).
pub struct Placement {
    dir: TrustedDir,
    pub id: String,
    file_mode: u32,
}

impl Placement {
    /// Creates (checked, no symlinks, root-owned) the date directory for `id`.
    pub fn prepare(cfg: &Recording, id: &str) -> Result<Placement, String> {
        let gid = cfg.group.as_deref().map(crate::system::user::group_id).transpose()?;
        let date = session::date_dir(id).ok_or("invalid session id")?;
        let dir_mode = if gid.is_some() { 0o750 } else { 0o700 };
        let dir = TrustedDir::open_with(&cfg.dir.join(&date), fs::DirMode { gid, mode: dir_mode })?;
        Ok(Placement { dir, id: id.to_string(), file_mode: if gid.is_some() { 0o640 } else { 0o600 } })
    }

    pub fn cast_path(&self) -> PathBuf {
        self.dir.path().join(format!("{}.cast", self.id))
    }

    fn create(&self, name: &str) -> Result<File, String> {
        self.dir.create_file(name, self.file_mode)
    }
}

/// Publishes the host's public key as `{dir}/host-key.pub` if it is not there already.
pub fn publish_key(cfg: &Recording, key: &ed25519_dalek::SigningKey) -> Result<(), String> {
    let gid = cfg.group.as_deref().map(crate::system::user::group_id).transpose()?;
    let dir = TrustedDir::open_with(
        &cfg.dir,
        fs::DirMode { gid, mode: if gid.is_some() { 0o750 } else { 0o700 } },
    )?;
    let text = format!("{}\n", seal::public_key_text(&key.verifying_key()));
    if dir.read(seal::PUB_FILE, 256).ok().flatten().as_deref() == Some(text.as_bytes()) {
        return Ok(());
    }
    dir.write(seal::PUB_FILE, text.as_bytes(), 0o644)
}

const STREAMS: usize = 4; // tty, stdout, stderr, input

fn index(s: Stream) -> usize {
    match s {
        Stream::Tty => 0,
        Stream::Stdout => 1,
        Stream::Stderr => 2,
    }
}

fn stream_of(i: usize) -> Stream {
    match i {
        1 => Stream::Stdout,
        2 => Stream::Stderr,
        _ => Stream::Tty,
    }
}

pub struct Recorder<'m> {
    place: Placement,
    file: Option<File>,
    hasher: sha2::Sha256,
    size: u64,
    start: Instant,
    started: SystemTime,
    decoders: [utf8::Decoder; STREAMS],
    /// Masking for the file (holds a possible secret until it is settled).
    maskers: Option<Vec<Masker<'m>>>,
    /// Masking for what the caller sees (`mask_live`; releases held bytes after a moment).
    live: Option<LiveMask<'m>>,
    record_input: bool,
    on_error: OnError,
    error: Option<String>,
    stop_reported: bool,
    out_bytes: u64,
    in_bytes: u64,
    events: u64,
    line: Vec<u8>,
    scratch: Vec<u8>,
    /// The terminal size last recorded (header or `r` event).
    size_wh: (u16, u16),
    /// Output waiting to become one event: consecutive output of one stream within
    /// [`COALESCE`] (or up to [`COALESCE_MAX`]) is one line, not one per read.
    pend: Pending,
}

/// How long output may wait to be written as one event (the recording lags the caller's view
/// by at most this; a killed helper loses at most this much of the recording).
pub const COALESCE: std::time::Duration = std::time::Duration::from_millis(5);
/// Largest event.
pub const COALESCE_MAX: usize = 64 * 1024;

#[derive(Default)]
struct Pending {
    code: &'static str,
    stream: usize,
    text: String,
    since: Option<Instant>,
    time: f64,
}

/// Settings of one recording.
pub struct Options<'m> {
    pub masks: Option<&'m MaskSet>,
    pub mask_live: bool,
    pub record_input: bool,
    pub on_error: OnError,
}

impl<'m> Recorder<'m> {
    /// Creates the recording file and writes its header.
    pub fn create(
        place: Placement,
        header: &Header,
        opts: Options<'m>,
        started: SystemTime,
    ) -> Result<Recorder<'m>, String> {
        let name = format!("{}.cast", place.id);
        let file = place.create(&name)?;
        let mut r = Recorder {
            place,
            file: Some(file),
            hasher: sha2::Sha256::new(),
            size: 0,
            start: Instant::now(),
            started,
            decoders: Default::default(),
            maskers: opts.masks.map(|m| (0..STREAMS).map(|_| Masker::new(m)).collect()),
            live: opts.masks.filter(|_| opts.mask_live).map(LiveMask::new),
            record_input: opts.record_input,
            on_error: opts.on_error,
            error: None,
            stop_reported: false,
            out_bytes: 0,
            in_bytes: 0,
            events: 0,
            line: Vec::with_capacity(96 * 1024),
            scratch: Vec::with_capacity(80 * 1024),
            size_wh: (header.width, header.height),
            pend: Pending::default(),
        };
        let mut line = serde_json::to_vec(header).map_err(|e| e.to_string())?;
        line.push(b'\n');
        r.write_line(&line);
        match r.error.take() {
            Some(e) => Err(e),
            None => Ok(r),
        }
    }

    pub fn path(&self) -> PathBuf {
        self.place.cast_path()
    }

    /// Writes one whole line, or nothing (the file is cut back if a write fails half-way).
    fn write_line(&mut self, line: &[u8]) {
        let Some(f) = self.file.as_mut() else { return };
        let mut done = 0;
        while done < line.len() {
            match f.write(&line[done..]) {
                Ok(0) => {
                    self.fail("the recording file stopped accepting data".into());
                    return;
                }
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    if done > 0 {
                        let _ = f.set_len(self.size);
                        let _ = std::io::Seek::seek(f, std::io::SeekFrom::Start(self.size));
                    }
                    self.fail(format!("cannot write {}: {e}", self.place.cast_path().display()));
                    return;
                }
            }
        }
        self.hasher.update(line);
        self.size += line.len() as u64;
    }

    fn fail(&mut self, why: String) {
        if self.error.is_none() {
            if self.on_error == OnError::Continue {
                crate::eprintln_safe!(
                    "lpexec: warning: {why}; the session continues UNRECORDED (on_error = \"continue\")"
                );
            }
            self.error = Some(why);
        }
        self.file = None;
    }

    fn event(&mut self, code: &'static str, stream: usize, bytes: &[u8]) {
        if self.file.is_none() || bytes.is_empty() {
            return;
        }
        if self.pend.since.is_some() && (self.pend.code != code || self.pend.stream != stream) {
            self.flush_pending();
        }
        self.decoders[stream].decode(bytes, &mut self.pend.text);
        if self.pend.text.is_empty() {
            return;
        }
        if self.pend.since.is_none() {
            self.pend.since = Some(Instant::now());
            self.pend.time = self.start.elapsed().as_secs_f64();
            self.pend.code = code;
            self.pend.stream = stream;
        }
        if self.pend.text.len() >= COALESCE_MAX {
            self.flush_pending();
        }
    }

    /// Writes the waiting output as one event line.
    fn flush_pending(&mut self) {
        if self.pend.since.take().is_none() || self.pend.text.is_empty() {
            self.pend.text.clear();
            return;
        }
        let mut line = std::mem::take(&mut self.line);
        line.clear();
        asciicast::event_line(&mut line, self.pend.time, self.pend.code, &self.pend.text);
        self.pend.text.clear();
        self.write_line(&line);
        self.line = line;
        self.events += 1;
    }

    fn pending_due(&self) -> Option<Instant> {
        self.pend.since.map(|t| t + COALESCE)
    }

    /// Output already masked (or not to be masked) goes to the file.
    fn record_output(&mut self, stream: usize, bytes: &[u8]) {
        self.event("o", stream, bytes);
    }

    /// The error that stopped recording, if any.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// Writes the seal. Returns the recording's path and SHA-256.
    pub fn seal(
        mut self,
        key: &ed25519_dalek::SigningKey,
        exit: Option<i32>,
        signal: Option<String>,
    ) -> Result<(PathBuf, String), String> {
        let path = self.place.cast_path();
        let file = self
            .file
            .take()
            .ok_or_else(|| self.error.clone().unwrap_or_else(|| "recording failed".into()))?;
        drop(file);
        let sha = seal::hex(&self.hasher.clone().finalize());
        let ended = SystemTime::now();
        let mut s = Seal {
            version: 1,
            session: self.place.id.clone(),
            start: Utc::from_system(self.started).rfc3339(),
            end: Utc::from_system(ended).rfc3339(),
            duration: self.start.elapsed().as_secs_f64(),
            exit,
            signal,
            bytes: Bytes { output: self.out_bytes, input: self.in_bytes },
            events: self.events,
            error: self.error.clone(),
            recording: RecordingDigest {
                file: format!("{}.cast", self.place.id),
                size: self.size,
                sha256: sha.clone(),
            },
            key: String::new(),
            signature: String::new(),
        };
        s.sign(key);
        let mut text = serde_json::to_vec_pretty(&s).map_err(|e| e.to_string())?;
        text.push(b'\n');
        let name = format!("{}.json", self.place.id);
        let mut f = self.place.create(&name)?;
        f.write_all(&text)
            .map_err(|e| format!("cannot write {}: {e}", self.place.dir.path().join(&name).display()))?;
        Ok((path, sha))
    }

    /// Releases everything the recording's maskers hold (end of session).
    fn flush_maskers(&mut self) {
        let Some(maskers) = self.maskers.as_mut() else { return };
        let mut released: Vec<(usize, Vec<u8>)> = Vec::new();
        for (i, m) in maskers.iter_mut().enumerate() {
            let mut out = Vec::new();
            m.flush(&mut out);
            released.push((i, out));
        }
        for (i, out) in released {
            if i == 3 {
                if self.record_input {
                    self.event("i", 3, &out);
                }
            } else {
                self.record_output(i, &out);
            }
        }
    }
}

impl Observer for Recorder<'_> {
    fn output(&mut self, stream: Stream, data: &[u8], show: &mut Vec<u8>) {
        self.out_bytes += data.len() as u64;
        match self.live.as_mut() {
            Some(l) => l.output(stream, data, show),
            None => show.extend_from_slice(data),
        }
        let i = index(stream);
        match self.maskers.as_mut() {
            Some(m) => {
                let mut masked = std::mem::take(&mut self.scratch);
                masked.clear();
                m[i].push(data, &mut masked);
                self.record_output(i, &masked);
                self.scratch = masked;
            }
            None => self.record_output(i, data),
        }
    }

    fn input(&mut self, data: &[u8]) {
        self.in_bytes += data.len() as u64;
        if !self.record_input {
            return;
        }
        let mut masked = Vec::new();
        match self.maskers.as_mut() {
            Some(m) => m[3].push(data, &mut masked),
            None => masked.extend_from_slice(data),
        }
        self.event("i", 3, &masked);
    }

    fn resize(&mut self, cols: u16, rows: u16) {
        if self.file.is_some() && (cols, rows) != self.size_wh {
            self.flush_pending();
            self.size_wh = (cols, rows);
            let t = self.start.elapsed().as_secs_f64();
            let mut line = Vec::new();
            asciicast::event_line(&mut line, t, "r", &format!("{cols}x{rows}"));
            self.write_line(&line);
            self.events += 1;
        }
    }

    fn deadline(&self) -> Option<Instant> {
        let live = self.live.as_ref().and_then(|l| l.deadline());
        match (live, self.pending_due()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn tick(&mut self, show: &mut dyn FnMut(Stream, &[u8])) {
        if let Some(l) = self.live.as_mut() {
            l.tick(show);
        }
        if self.pending_due().is_some_and(|d| Instant::now() >= d) {
            self.flush_pending();
        }
    }

    fn finish(&mut self, show: &mut dyn FnMut(Stream, &[u8])) {
        if let Some(l) = self.live.as_mut() {
            l.finish(show);
        }
        self.flush_maskers();
        for i in 0..STREAMS {
            let mut tail = String::new();
            self.decoders[i].finish(&mut tail);
            if !tail.is_empty() && self.file.is_some() {
                self.flush_pending();
                let t = self.start.elapsed().as_secs_f64();
                let mut line = Vec::new();
                asciicast::event_line(&mut line, t, if i == 3 { "i" } else { "o" }, &tail);
                self.write_line(&line);
                self.events += 1;
            }
        }
        self.flush_pending();
    }

    fn stop_reason(&mut self) -> Option<String> {
        if self.on_error == OnError::Deny && !self.stop_reported {
            if let Some(e) = &self.error {
                self.stop_reported = true;
                return Some(format!("{e}; the session cannot be recorded and on_error = \"deny\""));
            }
        }
        None
    }
}

/// Live masking without a recording (a role with `record = false` and `mask_live = true`).
pub struct LiveMask<'m> {
    maskers: Vec<Masker<'m>>,
}

impl<'m> LiveMask<'m> {
    pub fn new(set: &'m MaskSet) -> LiveMask<'m> {
        LiveMask { maskers: (0..3).map(|_| Masker::live(set)).collect() }
    }
}

impl Observer for LiveMask<'_> {
    fn output(&mut self, stream: Stream, data: &[u8], show: &mut Vec<u8>) {
        self.maskers[index(stream)].push(data, show);
    }
    fn deadline(&self) -> Option<Instant> {
        self.maskers.iter().filter_map(Masker::deadline).min()
    }
    fn tick(&mut self, show: &mut dyn FnMut(Stream, &[u8])) {
        let now = Instant::now();
        for (i, m) in self.maskers.iter_mut().enumerate() {
            if m.deadline().is_some_and(|d| now >= d) {
                let mut out = Vec::new();
                m.flush(&mut out);
                show(stream_of(i), &out);
            }
        }
    }
    fn finish(&mut self, show: &mut dyn FnMut(Stream, &[u8])) {
        for (i, m) in self.maskers.iter_mut().enumerate() {
            let mut out = Vec::new();
            m.flush(&mut out);
            show(stream_of(i), &out);
        }
    }
}

/// The recordings root for a path given on the command line or a session id.
pub fn locate(dir: &Path, session: &str) -> Result<PathBuf, String> {
    if session.contains('/') || session.ends_with(".cast") {
        return Ok(PathBuf::from(session));
    }
    let date = session::date_dir(session).ok_or_else(|| {
        format!(
            "{session:?} is neither a session id (like 20261203T190525.482913Z-3f9a2c1b) nor a .cast path"
        )
    })?;
    Ok(dir.join(date).join(format!("{session}.cast")))
}
