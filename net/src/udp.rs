//! Sending datagrams: with UDP generic segmentation offload (GSO) where the
//! kernel has it, one `sendmsg` carries up to [`GSO_SEGMENTS_MAX`]
//! datagrams that quinn-proto packed back to back, and the kernel (or the
//! NIC) cuts them; without it, one datagram per send.
//!
//! glommio's socket API has no control messages, so GSO sends are plain
//! non-blocking `sendmsg` calls on the socket's descriptor, made from the
//! executor thread. One system call for a whole batch costs less than an
//! io_uring submission per datagram, and is not blocking: when the socket
//! buffer is full (`EAGAIN`) the batch goes the glommio way instead, one
//! datagram at a time, each awaited.

use std::io::IoSlice;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;

use glommio::net::UdpSocket;
use nix::errno::Errno;
use nix::sys::socket::{sendmsg, sockopt, ControlMessage, MsgFlags, SockaddrStorage};

/// Datagrams per GSO send. The kernel takes up to 64 segments of at most
/// 64 KiB in all; 32 full-sized QUIC datagrams stay well inside both.
pub(crate) const GSO_SEGMENTS_MAX: usize = 32;

/// What quinn-proto wants sent: one datagram, or several of
/// `segment_size` bytes each (the last may be shorter) for one GSO send.
#[derive(Debug)]
pub(crate) struct Transmit {
    pub(crate) to: SocketAddr,
    pub(crate) data: Vec<u8>,
    pub(crate) segment_size: Option<usize>,
}

impl Transmit {
    /// The datagrams it holds.
    pub(crate) fn datagrams(&self) -> usize {
        match self.segment_size {
            Some(size) if size > 0 => self.data.len().div_ceil(size),
            _ => 1,
        }
    }
}

/// How many datagrams quinn-proto may pack into one transmit: more than one
/// only when GSO is wanted and this kernel has it (checked once on a
/// throwaway socket of the same family).
pub(crate) fn max_segments(wanted: bool, local: SocketAddr) -> usize {
    if !wanted {
        return 1;
    }
    let probe_addr: SocketAddr = match local {
        SocketAddr::V4(_) => ([127, 0, 0, 1], 0).into(),
        SocketAddr::V6(_) => (std::net::Ipv6Addr::LOCALHOST, 0).into(),
    };
    let Ok(probe) = std::net::UdpSocket::bind(probe_addr) else {
        return 1;
    };
    match nix::sys::socket::getsockopt(&probe, sockopt::UdpGsoSegment) {
        Ok(_) => GSO_SEGMENTS_MAX,
        Err(e) => {
            tracing::info!(error = %e, "UDP GSO not available: one datagram per send");
            1
        }
    }
}

/// Sends `t`; errors are logged (UDP may lose datagrams; QUIC recovers).
pub(crate) async fn send(socket: &UdpSocket, t: &Transmit) {
    match t.segment_size {
        Some(size) if t.data.len() > size => {
            if send_gso(socket, t, size).is_ok() {
                return;
            }
            for datagram in t.data.chunks(size) {
                send_one(socket, datagram, t.to).await;
            }
        }
        _ => send_one(socket, &t.data, t.to).await,
    }
}

/// One non-blocking `sendmsg` with a UDP_SEGMENT control message.
fn send_gso(socket: &UdpSocket, t: &Transmit, size: usize) -> Result<(), Errno> {
    let segment = u16::try_from(size).map_err(|_| Errno::EINVAL)?;
    let to = SockaddrStorage::from(t.to);
    let iov = [IoSlice::new(&t.data)];
    let cmsg = [ControlMessage::UdpGsoSegments(&segment)];
    match sendmsg(
        socket.as_raw_fd(),
        &iov,
        &cmsg,
        MsgFlags::MSG_DONTWAIT,
        Some(&to),
    ) {
        Ok(_) => Ok(()),
        Err(e) => {
            if e != Errno::EAGAIN {
                tracing::debug!(error = %e, to = %t.to, "udp gso send error");
            }
            Err(e)
        }
    }
}

async fn send_one(socket: &UdpSocket, datagram: &[u8], to: SocketAddr) {
    if let Err(e) = socket.send_to(datagram, to).await {
        tracing::debug!(error = %e, %to, "udp send error");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datagrams_of_a_transmit() {
        let t = |len, segment_size| Transmit {
            to: ([127, 0, 0, 1], 1).into(),
            data: vec![0; len],
            segment_size,
        };
        assert_eq!(t(1200, None).datagrams(), 1);
        assert_eq!(t(1200, Some(1200)).datagrams(), 1);
        assert_eq!(t(2500, Some(1200)).datagrams(), 3);
        assert_eq!(t(2400, Some(1200)).datagrams(), 2);
    }
}
