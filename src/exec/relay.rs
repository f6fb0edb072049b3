//! Byte buffers between a source and a sink, with a high-water mark for back-pressure.

use std::os::fd::BorrowedFd;

use crate::system::{Errno, fd};

/// How much output may wait for a slow consumer before the relay stops reading its source.
pub const HIGH_WATER: usize = 256 * 1024;
/// Read size for each chunk.
pub const CHUNK: usize = 64 * 1024;

#[derive(Default)]
pub struct Buf {
    data: Vec<u8>,
    start: usize,
}

impl Buf {
    pub fn is_empty(&self) -> bool {
        self.start >= self.data.len()
    }

    pub fn has_room(&self) -> bool {
        self.data.len() - self.start < HIGH_WATER
    }

    /// The vector to append to (compacted first when that is cheap).
    pub fn tail(&mut self) -> &mut Vec<u8> {
        if self.start > 0 && self.start == self.data.len() {
            self.data.clear();
            self.start = 0;
        } else if self.start > HIGH_WATER {
            self.data.drain(..self.start);
            self.start = 0;
        }
        &mut self.data
    }

    pub fn clear(&mut self) {
        self.data.clear();
        self.start = 0;
    }

    /// Writes as much as the sink takes without blocking. `Err` when the sink is gone
    /// (the buffer is then discarded).
    pub fn flush_to(&mut self, sink: BorrowedFd<'_>) -> Result<(), Errno> {
        while !self.is_empty() {
            match fd::write(sink, &self.data[self.start..]) {
                Ok(0) => return Err(Errno::EIO),
                Ok(n) => self.start += n,
                Err(Errno::EAGAIN) => return Ok(()),
                Err(e) => {
                    self.clear();
                    return Err(e);
                }
            }
        }
        self.clear();
        Ok(())
    }
}

/// Reads what is available from a non-blocking source into `scratch`. `Ok(None)` means
/// end of input (EOF, or EIO from a pty master whose slave side is closed).
pub fn read_some(src: BorrowedFd<'_>, scratch: &mut [u8]) -> Result<Option<usize>, Errno> {
    match fd::read(src, scratch) {
        Ok(0) => Ok(None),
        Ok(n) => Ok(Some(n)),
        Err(Errno::EIO) => Ok(None),
        Err(e) => Err(e),
    }
}

/// After the command exits: keep reading while output keeps coming (it may still be in the
/// kernel's pty or pipe buffers), but stop after `IDLE` without data, or `CAP` in all (a
/// background process that inherited the terminal must not keep lpexec alive forever).
pub struct Drain {
    idle_until: std::time::Instant,
    hard_until: std::time::Instant,
}

impl Drain {
    const IDLE: std::time::Duration = std::time::Duration::from_millis(200);
    const CAP: std::time::Duration = std::time::Duration::from_secs(5);

    pub fn start() -> Drain {
        let now = std::time::Instant::now();
        Drain { idle_until: now + Self::IDLE, hard_until: now + Self::CAP }
    }

    pub fn progress(&mut self) {
        self.idle_until = (std::time::Instant::now() + Self::IDLE).min(self.hard_until);
    }

    pub fn expired(&self) -> bool {
        std::time::Instant::now() >= self.idle_until
    }

    pub fn deadline(&self) -> std::time::Instant {
        self.idle_until
    }
}
