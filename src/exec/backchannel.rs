//! Messages between the helper and its monitor process (pty mode), over a
//! `SOCK_SEQPACKET` socket pair: fixed 8-byte records, one per message.

use std::os::fd::{AsFd, OwnedFd};

use nix::sys::signal::Signal;
use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};

use crate::system::{Context, Errno, SysError, fd};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Msg {
    /// monitor → helper: the command was exec'd.
    Started(i32),
    /// monitor → helper: setting up the command failed before exec (privileges, stdio).
    SetupFailed(Errno),
    /// monitor → helper: exec failed.
    ExecFailed(Errno),
    /// monitor → helper: the command stopped (job control).
    Stopped(Signal),
    /// monitor → helper: the command exited.
    Exited(i32),
    /// monitor → helper: the command was killed.
    Signaled(Signal),
    /// helper → monitor: send this signal to the command's process group.
    Signal(Signal),
    /// helper → monitor: the caller resumed; continue the command in the foreground.
    Resume,
}

impl Msg {
    fn encode(self) -> [u8; 8] {
        let (tag, v): (u32, i32) = match self {
            Msg::Started(p) => (1, p),
            Msg::SetupFailed(e) => (2, e as i32),
            Msg::ExecFailed(e) => (3, e as i32),
            Msg::Stopped(s) => (4, s as i32),
            Msg::Exited(c) => (5, c),
            Msg::Signaled(s) => (6, s as i32),
            Msg::Signal(s) => (7, s as i32),
            Msg::Resume => (8, 0),
        };
        let mut b = [0u8; 8];
        b[..4].copy_from_slice(&tag.to_le_bytes());
        b[4..].copy_from_slice(&v.to_le_bytes());
        b
    }

    fn decode(b: &[u8]) -> Option<Msg> {
        let tag = u32::from_le_bytes(b.get(..4)?.try_into().ok()?);
        let v = i32::from_le_bytes(b.get(4..8)?.try_into().ok()?);
        let sig = || Signal::try_from(v).ok();
        Some(match tag {
            1 => Msg::Started(v),
            2 => Msg::SetupFailed(Errno::from_raw(v)),
            3 => Msg::ExecFailed(Errno::from_raw(v)),
            4 => Msg::Stopped(sig()?),
            5 => Msg::Exited(v),
            6 => Msg::Signaled(sig()?),
            7 => Msg::Signal(sig()?),
            8 => Msg::Resume,
            _ => return None,
        })
    }
}

/// One end of the channel.
pub struct Channel(pub OwnedFd);

pub fn pair() -> Result<(Channel, Channel), SysError> {
    let (a, b) = socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC)
        .ctx(|| "socketpair".into())?;
    Ok((Channel(a), Channel(b)))
}

impl Channel {
    pub fn send(&self, m: Msg) -> Result<(), Errno> {
        fd::write(self.0.as_fd(), &m.encode()).map(drop)
    }

    /// The next message; `Ok(None)` when the other side has gone.
    pub fn recv(&self) -> Result<Option<Msg>, Errno> {
        let mut b = [0u8; 8];
        match fd::read(self.0.as_fd(), &mut b)? {
            0 => Ok(None),
            8 => Msg::decode(&b).map(Some).ok_or(Errno::EPROTO),
            _ => Err(Errno::EPROTO),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        for m in [
            Msg::Started(42),
            Msg::ExecFailed(Errno::ENOENT),
            Msg::Stopped(Signal::SIGTSTP),
            Msg::Exited(7),
            Msg::Signaled(Signal::SIGKILL),
            Msg::Signal(Signal::SIGINT),
            Msg::Resume,
            Msg::SetupFailed(Errno::EPERM),
        ] {
            assert_eq!(Msg::decode(&m.encode()), Some(m));
        }
        assert_eq!(Msg::decode(&[9, 0, 0, 0, 0, 0, 0, 0]), None);
        assert_eq!(Msg::decode(&[4, 0, 0, 0, 99, 0, 0, 0]), None);
    }
}
