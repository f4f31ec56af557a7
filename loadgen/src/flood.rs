//! `tidegate-loadgen flood`: a handshake flood for testing a server's QUIC
//! front door (`docs/SECURITY.md`). It sends client Initial packets, each
//! the first datagram of a distinct handshake it never continues, paced at
//! a given rate, from a few UDP sockets, for a bounded time. Nothing is
//! spoofed: the datagrams come from this host's own addresses, so a server
//! answering with Retry sees none of them come back.
//!
//! Bounded on purpose: at most [`MAX_RATE`] datagrams a second, at most
//! [`MAX_DURATION`], and loopback targets only unless `--allow-remote`.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// The fastest flood this tool sends.
pub const MAX_RATE: u32 = 100_000;
/// The longest flood this tool sends.
pub const MAX_DURATION: Duration = Duration::from_secs(300);
/// Distinct Initials built up front and sent round-robin.
const DISTINCT_INITIALS: usize = 4096;
/// Sockets the flood is spread over.
const SOCKETS: usize = 4;

/// What a flood did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flooded {
    /// Datagrams sent.
    pub sent: u64,
    /// Datagrams that came back (Retry, refusals, handshake packets).
    pub answers: u64,
}

/// Floods `target` with Initials at `rate` per second for `duration`.
pub fn run(
    target: SocketAddr,
    rate: u32,
    duration: Duration,
    allow_remote: bool,
) -> anyhow::Result<Flooded> {
    if !target.ip().is_loopback() && !allow_remote {
        bail!("{target} is not loopback: a flood leaves this host only with --allow-remote");
    }
    if rate == 0 || rate > MAX_RATE {
        bail!("--rate must be in 1..={MAX_RATE}");
    }
    if duration > MAX_DURATION {
        bail!("--duration is at most {}s", MAX_DURATION.as_secs());
    }
    let initials = initials(DISTINCT_INITIALS)?;
    let bind: SocketAddr = if target.is_ipv4() {
        "0.0.0.0:0".parse()?
    } else {
        "[::]:0".parse()?
    };
    let sockets = (0..SOCKETS)
        .map(|_| {
            let s = UdpSocket::bind(bind)?;
            s.set_nonblocking(true)?;
            Ok(s)
        })
        .collect::<std::io::Result<Vec<_>>>()
        .context("binding the flood's sockets")?;
    let started = Instant::now();
    let interval = Duration::from_secs(1) / rate;
    let mut flooded = Flooded {
        sent: 0,
        answers: 0,
    };
    let mut buf = vec![0u8; 65_535];
    while started.elapsed() < duration {
        // Paced by the schedule, in bursts of whatever is due.
        let due = (started.elapsed().as_nanos() / interval.as_nanos().max(1)) as u64;
        while flooded.sent < due {
            let i = flooded.sent as usize;
            let (socket, datagram) = (&sockets[i % SOCKETS], &initials[i % initials.len()]);
            // A full socket buffer drops the datagram: that is a flood too.
            let _ = socket.send_to(datagram, target);
            flooded.sent += 1;
        }
        for socket in &sockets {
            while socket.recv_from(&mut buf).is_ok() {
                flooded.answers += 1;
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(flooded)
}

/// `count` distinct client Initials (the first datagram of a tidegate/1
/// handshake), from quinn-proto's client, sans-IO.
fn initials(count: usize) -> anyhow::Result<Vec<Vec<u8>>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    tls.alpn_protocols = vec![tidegate_proto::protocol::ALPN.to_vec()];
    let crypto = quinn_proto::crypto::rustls::QuicClientConfig::try_from(tls)?;
    let config = quinn_proto::ClientConfig::new(Arc::new(crypto));
    let mut endpoint = quinn_proto::Endpoint::new(
        Arc::new(quinn_proto::EndpointConfig::default()),
        None,
        false,
        None,
    );
    // The address only goes into the connection's state; the datagrams
    // are sent by hand.
    let to: SocketAddr = "127.0.0.1:9".parse()?;
    let now = Instant::now();
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let (_, mut conn) = endpoint.connect(now, config.clone(), to, "localhost")?;
        let mut buf = Vec::new();
        let t = conn
            .poll_transmit(now, 1, &mut buf)
            .context("quinn-proto made no Initial")?;
        buf.truncate(t.size);
        out.push(buf);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initials_are_distinct_quic_long_header_packets() -> anyhow::Result<()> {
        let made = initials(8)?;
        for d in &made {
            // Long header with the fixed bit, type Initial (RFC 9000, 17.2).
            assert_eq!(d.first().map(|b| b & 0xf0), Some(0xc0));
            assert!(d.len() >= 1200, "Initials are padded to 1200 bytes");
        }
        let distinct: std::collections::HashSet<_> = made.iter().collect();
        assert_eq!(distinct.len(), made.len());
        Ok(())
    }

    #[test]
    fn remote_targets_and_unbounded_floods_are_refused() {
        let remote: SocketAddr = "192.0.2.1:7441".parse().unwrap_or_else(|_| unreachable!());
        assert!(run(remote, 10, Duration::from_millis(1), false).is_err());
        let local: SocketAddr = "127.0.0.1:9".parse().unwrap_or_else(|_| unreachable!());
        assert!(run(local, MAX_RATE + 1, Duration::from_millis(1), false).is_err());
        assert!(run(local, 10, MAX_DURATION * 2, false).is_err());
    }
}
