//! Datagrams in and out, with UDP segmentation offloads where the kernel
//! has them.
//!
//! Out (GSO): one `sendmsg` carries up to [`GSO_SEGMENTS_MAX`] datagrams
//! that quinn-proto packed back to back, and the kernel (or the NIC) cuts
//! them; without GSO, one datagram per send.
//!
//! In (GRO): the kernel hands over runs of datagrams from one sender as one
//! buffer with their segment size in a control message (a client that
//! sends with GSO, as quinn does, is received as it sent), so one system
//! call takes up to 64 KiB. The socket is drained with non-blocking
//! `recvmsg` calls; when it is empty, an awaited one-byte peek (io_uring)
//! waits for the next datagram without taking it.
//!
//! glommio's socket API has no control messages, so GSO sends are plain
//! non-blocking `sendmsg` calls on the socket's descriptor, made from the
//! executor thread. One system call for a whole batch costs less than an
//! io_uring submission per datagram, and is not blocking: when the socket
//! buffer is full (`EAGAIN`) the batch goes the glommio way instead, one
//! datagram at a time, each awaited.

use std::io::{IoSlice, IoSliceMut};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, BorrowedFd};

use bytes::BytesMut;
use glommio::net::UdpSocket;
use nix::errno::Errno;
use nix::sys::socket::{
    recvmsg, sendmsg, setsockopt, sockopt, ControlMessage, ControlMessageOwned, MsgFlags,
    SockaddrStorage,
};

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
/// Returns false when the kernel refused GSO for good (EIO: no checksum
/// offload on the route's device; EINVAL: segments it will not take):
/// the caller should stop packing datagrams, as quinn-udp does.
pub(crate) async fn send(socket: &UdpSocket, t: &Transmit) -> bool {
    let mut gso_works = true;
    match t.segment_size {
        Some(size) if t.data.len() > size => {
            match send_gso(socket, t, size) {
                Ok(()) => return true,
                Err(Errno::EIO | Errno::EINVAL) => gso_works = false,
                Err(_) => {}
            }
            for datagram in t.data.chunks(size) {
                send_one(socket, datagram, t.to).await;
            }
        }
        _ => send_one(socket, &t.data, t.to).await,
    }
    gso_works
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

/// Asks for `receive` and `send` bytes of socket buffer. A burst that
/// overflows the receive buffer is dropped by the kernel, and QUIC takes
/// the loss for congestion (a retransmission and a smaller window). The
/// kernel caps the sizes at `net.core.rmem_max` / `wmem_max` (`tidegate tune
/// check` reports those); the sizes granted are returned, as the kernel
/// reports them (twice the usable bytes, for its own bookkeeping).
pub(crate) fn set_buffers(socket: &UdpSocket, receive: usize, send: usize) -> (usize, usize) {
    // SAFETY: as in `enable_gro`: the descriptor belongs to `socket`, which
    // outlives `fd`.
    let fd = unsafe { BorrowedFd::borrow_raw(socket.as_raw_fd()) };
    if let Err(e) = setsockopt(&fd, sockopt::RcvBuf, &receive) {
        tracing::warn!(error = %e, "cannot set the UDP receive buffer");
    }
    if let Err(e) = setsockopt(&fd, sockopt::SndBuf, &send) {
        tracing::warn!(error = %e, "cannot set the UDP send buffer");
    }
    let granted = |r: nix::Result<usize>| r.unwrap_or(0);
    (
        granted(nix::sys::socket::getsockopt(&fd, sockopt::RcvBuf)),
        granted(nix::sys::socket::getsockopt(&fd, sockopt::SndBuf)),
    )
}

/// Asks the kernel to coalesce received datagrams (UDP_GRO); false when
/// it cannot (then every receive is one datagram, as without the option).
pub(crate) fn enable_gro(socket: &UdpSocket) -> bool {
    // SAFETY: the descriptor belongs to `socket`, which is borrowed for the
    // whole life of `fd` (this function), so it stays open and is not
    // reused while `fd` exists.
    let fd = unsafe { BorrowedFd::borrow_raw(socket.as_raw_fd()) };
    match setsockopt(&fd, sockopt::UdpGroSegment, &true) {
        Ok(()) => true,
        Err(e) => {
            tracing::info!(error = %e, "UDP GRO not available: one datagram per receive");
            false
        }
    }
}

/// Datagrams one `receive` takes at most: a socket that never empties (a
/// flood, many busy connections) must not grow `out` without bound or keep
/// the shard's other tasks from running.
pub(crate) const RECEIVE_BATCH_MAX: usize = 128;

/// Takes the datagrams waiting on the socket (waiting for the first if
/// there is none), split into single datagrams, into `out`: at least one,
/// at most about [`RECEIVE_BATCH_MAX`]. `buf` must hold the largest receive
/// (64 KiB).
pub(crate) async fn receive(
    socket: &UdpSocket,
    buf: &mut [u8],
    cmsg: &mut Vec<u8>,
    out: &mut Vec<(SocketAddr, BytesMut)>,
) {
    while out.len() < RECEIVE_BATCH_MAX {
        let (len, from, segment) = {
            let mut iov = [IoSliceMut::new(buf)];
            match recvmsg::<SockaddrStorage>(
                socket.as_raw_fd(),
                &mut iov,
                Some(cmsg),
                MsgFlags::MSG_DONTWAIT,
            ) {
                Ok(msg) => {
                    let segment = msg.cmsgs().find_map(|c| match c {
                        ControlMessageOwned::UdpGroSegments(size) => Some(usize::from(size)),
                        _ => None,
                    });
                    (msg.bytes, msg.address.and_then(|a| to_std(&a)), segment)
                }
                Err(Errno::EAGAIN) => {
                    if !out.is_empty() {
                        return;
                    }
                    // Nothing yet: wait for a datagram without taking it.
                    if let Err(e) = socket.peek_from(&mut [0u8; 1]).await {
                        tracing::debug!(error = %e, "udp peek error");
                    }
                    continue;
                }
                Err(Errno::EINTR) => continue,
                Err(e) => {
                    // ICMP errors from earlier sends surface here on some
                    // kernels; they say nothing about this socket.
                    tracing::debug!(error = %e, "udp receive error");
                    if !out.is_empty() {
                        return;
                    }
                    // Wait for data rather than spin on an error that
                    // might repeat.
                    if let Err(e) = socket.peek_from(&mut [0u8; 1]).await {
                        tracing::debug!(error = %e, "udp peek error");
                    }
                    continue;
                }
            }
        };
        let Some(from) = from else { continue };
        let data = &buf[..len];
        match segment {
            Some(size) if size > 0 && size < len => {
                out.extend(data.chunks(size).map(|d| (from, BytesMut::from(d))));
            }
            _ => out.push((from, BytesMut::from(data))),
        }
    }
}

/// The control-message space a GRO receive needs.
pub(crate) fn gro_cmsg_space() -> Vec<u8> {
    nix::cmsg_space!(u16)
}

fn to_std(addr: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = addr.as_sockaddr_in() {
        return Some(std::net::SocketAddrV4::from(*v4).into());
    }
    addr.as_sockaddr_in6()
        .map(|v6| std::net::SocketAddrV6::from(*v6).into())
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
