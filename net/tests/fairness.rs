//! Sharing the admission window: deficit round robin between connections,
//! weights by principal, and a window changed at run time, against real
//! quinn clients over loopback.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{
    cell::RefCell,
    collections::HashMap,
    rc::Rc,
    sync::{
        atomic::{AtomicBool, Ordering},
        mpsc, Arc, Mutex,
    },
    thread,
    time::{Duration, Instant},
};

use bytes::Bytes;
use common::{call, client, frame, spawn, tokio_rt};
use quinn_proto::StreamId;
use tidegate_net::{Authenticated, ConnId, QuicServer, QuicSettings, ServerStats};

/// What the test thread asks of the server's thread.
enum Command {
    SetMax(usize),
    SetWeights(HashMap<Arc<str>, u32>),
    /// Answer every request held so far.
    AnswerHeld,
}

/// The server's counters as its thread last published them.
#[derive(Clone, Default)]
struct Seen {
    stats: ServerStats,
    by_principal: HashMap<String, u64>,
}

/// The test's side of a server running [`app`].
#[derive(Clone, Default)]
struct Control {
    commands: Arc<Mutex<Vec<Command>>>,
    seen: Arc<Mutex<Seen>>,
}

impl Control {
    fn send(&self, command: Command) {
        self.commands.lock().unwrap().push(command);
    }

    fn seen(&self) -> Seen {
        self.seen.lock().unwrap().clone()
    }

    /// Waits (bounded) until what the server published satisfies `done`.
    fn wait_for(&self, what: &str, limit: Duration, done: impl Fn(&Seen) -> bool) -> Seen {
        let deadline = Instant::now() + limit;
        loop {
            let seen = self.seen();
            if done(&seen) {
                return seen;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {:?} {:?}",
                seen.stats,
                seen.by_principal
            );
            thread::sleep(Duration::from_millis(1));
        }
    }
}

/// How the test application answers.
#[derive(Clone, Copy)]
enum Answer {
    /// Each request after this long (a slow application).
    After(Duration),
    /// Only on [`Command::AnswerHeld`].
    WhenTold,
}

/// A server whose application names each connection's principal after
/// the first bytes of its requests' bodies (up to `|`), answers as
/// `answer` says, runs `control`'s commands and publishes its counters.
fn app(settings: QuicSettings, answer: Answer, control: Control) -> common::EchoServer {
    spawn(settings, move |server| async move {
        let server = Rc::new(server);
        let held: Rc<RefCell<Vec<(ConnId, StreamId)>>> = Rc::default();
        glommio::spawn_local(watch(server.clone(), held.clone(), control)).detach();
        while let Some(req) = server.next_request().await {
            name_principal(&req.peer, &req.data);
            match answer {
                Answer::After(delay) => {
                    let responder = server.responder();
                    glommio::spawn_local(async move {
                        glommio::timer::sleep(delay).await;
                        responder.respond(req.conn, req.stream, vec![Bytes::from_static(b"ok")]);
                    })
                    .detach();
                }
                Answer::WhenTold => held.borrow_mut().push((req.conn, req.stream)),
            }
        }
    })
}

fn name_principal(peer: &tidegate_net::Peer, request: &[u8]) {
    let body = request.get(8..).unwrap_or_default();
    let name = body.split(|b| *b == b'|').next().unwrap_or_default();
    let mut auth = peer.authenticated.borrow_mut();
    if auth.is_none() && !name.is_empty() {
        *auth = Some(Authenticated {
            principal: String::from_utf8_lossy(name).into(),
            expires_at_ms: None,
        });
    }
}

/// The server thread's side of [`Control`], every millisecond.
async fn watch(server: Rc<QuicServer>, held: Rc<RefCell<Vec<(ConnId, StreamId)>>>, c: Control) {
    loop {
        let commands: Vec<Command> = c.commands.lock().unwrap().drain(..).collect();
        for command in commands {
            match command {
                Command::SetMax(bytes) => server.set_max_inflight_bytes(bytes),
                Command::SetWeights(weights) => server.set_weights(weights),
                Command::AnswerHeld => {
                    let answered: Vec<_> = held.borrow_mut().drain(..).collect();
                    for (conn, stream) in answered {
                        server.respond(conn, stream, vec![Bytes::from_static(b"ok")]);
                    }
                }
            }
        }
        let by_principal = server
            .admitted_by_principal()
            .into_iter()
            .map(|(p, n)| (p.to_string(), n))
            .collect();
        *c.seen.lock().unwrap() = Seen {
            stats: server.stats(),
            by_principal,
        };
        glommio::timer::sleep(Duration::from_millis(1)).await;
    }
}

/// A request of `principal` with a body of `body_len` bytes.
fn request_of(principal: &str, body_len: usize) -> Vec<u8> {
    let mut body = format!("{principal}|").into_bytes();
    body.resize(body_len, 7);
    frame(&body)
}

/// Clients on their own thread: one connection per `(principal, streams)`,
/// each keeping `streams` requests of `body_len` bytes in flight until
/// `stop`. Joins to the number of answers per connection.
fn producers(
    server: &common::EchoServer,
    connections: &[(&'static str, usize)],
    body_len: usize,
    stop: Arc<AtomicBool>,
) -> thread::JoinHandle<Vec<u64>> {
    let (addr, cert) = (server.addr, server.cert.clone());
    let connections = connections.to_vec();
    thread::spawn(move || {
        tokio_rt().block_on(async move {
            let endpoint = client(&cert);
            let mut per_conn = Vec::new();
            for (principal, streams) in connections {
                let conn = endpoint.connect(addr, "localhost").unwrap().await.unwrap();
                let request = request_of(principal, body_len);
                let stop = stop.clone();
                let loops = (0..streams).map(move |_| {
                    let (conn, request, stop) = (conn.clone(), request.clone(), stop.clone());
                    async move {
                        let mut answers = 0u64;
                        while !stop.load(Ordering::Relaxed) {
                            let reply = call(&conn, &request).await.unwrap();
                            assert_eq!(reply, b"ok");
                            answers += 1;
                        }
                        answers
                    }
                });
                per_conn.push(futures::future::join_all(loops));
            }
            let answers = futures::future::join_all(per_conn).await;
            answers.into_iter().map(|a| a.iter().sum()).collect()
        })
    })
}

const KIB: usize = 1 << 10;

/// Runs a heavy connection (32 requests in flight) and a light one (8)
/// through a window of four requests, and returns the bytes admitted to
/// each over a window of about 400 requests, once both run.
fn measure_shares(weights: [(&str, u32); 2]) -> (u64, u64) {
    let body_len = 16 * KIB;
    let settings = QuicSettings {
        max_inflight_bytes: 4 * (body_len + 64),
        fair_quantum: 20 * KIB,
        ..QuicSettings::default()
    };
    let control = Control::default();
    let weights = weights.iter().map(|(p, w)| (Arc::from(*p), *w)).collect();
    control.send(Command::SetWeights(weights));
    let answer = Answer::After(Duration::from_millis(5));
    let server = app(settings, answer, control.clone());
    let stop = Arc::new(AtomicBool::new(false));
    let clients = producers(
        &server,
        &[("heavy", 32), ("light", 8)],
        body_len,
        stop.clone(),
    );
    let admitted = |s: &Seen, p: &str| s.by_principal.get(p).copied().unwrap_or(0);
    let limit = Duration::from_secs(30);
    // Warm up: both connections named and admitting.
    let warm = (100 * body_len) as u64;
    let start = control.wait_for("both connections running", limit, |s| {
        admitted(s, "heavy") > warm && admitted(s, "light") > warm
    });
    let total = |s: &Seen| admitted(s, "heavy") + admitted(s, "light");
    let window = (400 * body_len) as u64;
    let end = control.wait_for("a window of admissions", limit, |s| {
        total(s) >= total(&start) + window
    });
    stop.store(true, Ordering::Relaxed);
    let answers = clients.join().unwrap();
    assert!(answers.iter().all(|n| *n > 0), "answers {answers:?}");
    assert!(end.stats.credit_stalls_total > 0, "{:?}", end.stats);
    (
        admitted(&end, "heavy") - admitted(&start, "heavy"),
        admitted(&end, "light") - admitted(&start, "light"),
    )
}

fn assert_ratio(what: &str, heavy: u64, light: u64, want: f64) {
    let ratio = light as f64 / heavy as f64;
    eprintln!("{what}: heavy {heavy} B, light {light} B, light/heavy {ratio:.3}");
    assert!(
        (ratio / want - 1.0).abs() <= 0.10,
        "{what}: light/heavy {ratio:.3}, want {want} ±10% (heavy {heavy}, light {light})"
    );
}

#[test]
fn a_connection_with_many_streams_gets_the_same_share_as_one_with_few() {
    let (heavy, light) = measure_shares([("heavy", 1), ("light", 1)]);
    assert_ratio("equal weights", heavy, light, 1.0);
}

#[test]
fn weights_by_principal_set_the_shares_of_the_window() {
    let (heavy, light) = measure_shares([("heavy", 1), ("light", 2)]);
    assert_ratio("weights 1:2", heavy, light, 2.0);
}

/// `n` requests of `body_len` bytes at once on one connection, from their
/// own thread; the receiver gets how many were answered.
fn burst(server: &common::EchoServer, n: usize, body_len: usize) -> mpsc::Receiver<usize> {
    let (addr, cert) = (server.addr, server.cert.clone());
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        tokio_rt().block_on(async move {
            let endpoint = client(&cert);
            let conn = endpoint.connect(addr, "localhost").unwrap().await.unwrap();
            let request = request_of("burst", body_len);
            let calls = (0..n).map(|_| call(&conn, &request));
            let replies = futures::future::join_all(calls).await;
            let ok = replies.iter().filter(|r| r.as_deref() == Ok(b"ok")).count();
            let _ = tx.send(ok);
        })
    });
    rx
}

#[test]
fn raising_the_window_admits_waiting_requests_promptly_and_lowering_drops_nothing() {
    let body_len = 30 * KIB;
    let settings = QuicSettings {
        max_inflight_bytes: 64 * KIB,
        ..QuicSettings::default()
    };
    let control = Control::default();
    let server = app(settings, Answer::WhenTold, control.clone());
    let limit = Duration::from_secs(10);
    let first = burst(&server, 8, body_len);
    // Two requests fit; the six others wait unread.
    let seen = control.wait_for("six requests waiting", limit, |s| {
        s.stats.requests_total == 2 && s.stats.credit_stalls_total == 6
    });
    assert_eq!(seen.stats.inflight_max_bytes, 64 * KIB);
    assert_eq!(seen.stats.admitted_requests_total, 2);
    let raised = Instant::now();
    control.send(Command::SetMax(1 << 20));
    let seen = control.wait_for("the six admitted", Duration::from_secs(1), |s| {
        s.stats.requests_total == 8
    });
    eprintln!("admitted after the raise in {:?}", raised.elapsed());
    assert_eq!(seen.stats.inflight_max_bytes, 1 << 20);
    assert_eq!(seen.stats.admitted_requests_total, 8);
    let held = seen.stats.inflight_bytes;
    assert!(held >= 8 * body_len, "{:?}", seen.stats);
    assert_eq!(seen.stats.admitted_bytes_total, held as u64);

    // Lowered under what is held: nothing held is dropped, and a new
    // request waits until the held ones are answered.
    control.send(Command::SetMax(10 * KIB));
    let second = burst(&server, 1, body_len);
    let seen = control.wait_for("a request waiting", limit, |s| {
        s.stats.credit_stalls_total == 7 && s.stats.inflight_max_bytes == 10 * KIB
    });
    assert_eq!(seen.stats.inflight_bytes, held);
    assert_eq!(seen.stats.requests_total, 8);
    control.send(Command::AnswerHeld);
    assert_eq!(first.recv_timeout(limit), Ok(8));
    // Larger than the lowered window, it goes alone once nothing is held.
    control.wait_for("the late request admitted", limit, |s| {
        s.stats.requests_total == 9
    });
    control.send(Command::AnswerHeld);
    assert_eq!(second.recv_timeout(limit), Ok(1));
    control.wait_for("everything answered", limit, |s| {
        s.stats.inflight_bytes == 0
    });
}

#[test]
fn a_request_larger_than_the_window_gets_through_a_steady_flow_of_small_ones() {
    // Eight small requests in flight always leave room for a ninth, never
    // for a request larger than the window: it needs the window empty.
    let settings = QuicSettings {
        max_inflight_bytes: 64 * KIB,
        fair_quantum: 16 * KIB,
        ..QuicSettings::default()
    };
    let control = Control::default();
    control.send(Command::SetWeights(HashMap::from([(
        Arc::from("small"),
        1,
    )])));
    let server = app(
        settings,
        Answer::After(Duration::from_millis(5)),
        control.clone(),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let small = producers(&server, &[("small", 8)], 4 * KIB, stop.clone());
    let limit = Duration::from_secs(10);
    control.wait_for("small requests flowing", limit, |s| {
        s.by_principal
            .get("small")
            .is_some_and(|n| *n > (100 * 4 * KIB) as u64)
    });
    let big = burst(&server, 1, 100 * KIB);
    assert_eq!(big.recv_timeout(limit), Ok(1), "{:?}", control.seen().stats);
    stop.store(true, Ordering::Relaxed);
    assert!(small.join().unwrap()[0] > 0);
}

/// A server with a window of 64 KiB and a quantum of 16 KiB that answers
/// only when told, and `sparse_overdraw` for connections holding nothing.
fn held_server(sparse_overdraw: usize) -> (common::EchoServer, Control) {
    let settings = QuicSettings {
        max_inflight_bytes: 64 * KIB,
        fair_quantum: 16 * KIB,
        sparse_overdraw,
        ..QuicSettings::default()
    };
    let control = Control::default();
    (app(settings, Answer::WhenTold, control.clone()), control)
}

#[test]
fn while_a_request_waits_later_ones_queue_behind_it_even_if_they_fit() {
    let (server, control) = held_server(0);
    let limit = Duration::from_secs(10);
    let small = burst(&server, 2, 4 * KIB);
    control.wait_for("two small requests held", limit, |s| {
        s.stats.requests_total == 2
    });
    // Larger than what is left of the window: it waits.
    let big = burst(&server, 1, 100 * KIB);
    control.wait_for("the large request waiting", limit, |s| {
        s.stats.credit_stalls_total == 1
    });
    // This one would fit, but the round robin decides who goes next, not
    // who arrived while there was room.
    let late = burst(&server, 1, 4 * KIB);
    let seen = control.wait_for("the late request waiting", limit, |s| {
        s.stats.credit_stalls_total == 2
    });
    assert_eq!(seen.stats.requests_total, 2, "{:?}", seen.stats);
    assert_eq!(seen.stats.admitted_requests_total, 2, "{:?}", seen.stats);
    // The large request's deficit covered it while it waited (alone in
    // the round, its rounds are skipped): its turn has come, and it goes
    // alone once the window is empty; the late one goes next.
    control.send(Command::AnswerHeld);
    assert_eq!(small.recv_timeout(limit), Ok(2));
    let seen = control.wait_for("the large request admitted", limit, |s| {
        s.stats.requests_total == 3
    });
    assert_eq!(seen.stats.inflight_bytes, 100 * KIB + 8, "alone");
    control.send(Command::AnswerHeld);
    assert_eq!(big.recv_timeout(limit), Ok(1));
    control.wait_for("the late request admitted", limit, |s| {
        s.stats.requests_total == 4
    });
    control.send(Command::AnswerHeld);
    assert_eq!(late.recv_timeout(limit), Ok(1));
}

#[test]
fn a_connection_holding_nothing_goes_ahead_within_the_overdraw() {
    let (server, control) = held_server(16 * KIB);
    let limit = Duration::from_secs(10);
    let held = burst(&server, 15, 4 * KIB);
    control.wait_for("the window nearly full", limit, |s| {
        s.stats.requests_total == 15
    });
    // Too large for the window and the overdraw: it waits its turn.
    let big = burst(&server, 1, 100 * KIB);
    control.wait_for("the large request waiting", limit, |s| {
        s.stats.credit_stalls_total == 1
    });
    // A new connection holds nothing: its request goes ahead, above the
    // window, instead of queueing behind the large one.
    let sparse = burst(&server, 1, 4 * KIB);
    let seen = control.wait_for("the sparse request admitted", limit, |s| {
        s.stats.requests_total == 16
    });
    assert_eq!(
        seen.stats.admitted_sparse_requests_total, 1,
        "{:?}",
        seen.stats
    );
    assert!(seen.stats.inflight_bytes > 64 * KIB, "{:?}", seen.stats);
    // Of two at once, only the first finds its connection holding nothing.
    let pair = burst(&server, 2, 4 * KIB);
    let seen = control.wait_for("one of the pair waiting", limit, |s| {
        s.stats.requests_total == 17 && s.stats.credit_stalls_total == 2
    });
    assert_eq!(
        seen.stats.admitted_sparse_requests_total, 2,
        "{:?}",
        seen.stats
    );
    // Nothing more fits the overdraw: 16 KiB is shared by all.
    let over = burst(&server, 1, 12 * KIB);
    let seen = control.wait_for("the overdraw spent", limit, |s| {
        s.stats.credit_stalls_total == 3
    });
    assert_eq!(seen.stats.requests_total, 17, "{:?}", seen.stats);
    assert!(seen.stats.inflight_bytes <= 80 * KIB, "{:?}", seen.stats);
    // Everyone gets through as the held requests are answered: each
    // answer frees room for at least one more.
    let mut admitted = 17;
    while admitted < 20 {
        control.send(Command::AnswerHeld);
        admitted = control
            .wait_for("the round moving on", limit, |s| {
                s.stats.requests_total > admitted
            })
            .stats
            .requests_total;
    }
    control.send(Command::AnswerHeld);
    assert_eq!(held.recv_timeout(limit), Ok(15));
    assert_eq!(sparse.recv_timeout(limit), Ok(1));
    assert_eq!(big.recv_timeout(limit), Ok(1));
    assert_eq!(pair.recv_timeout(limit), Ok(2));
    assert_eq!(over.recv_timeout(limit), Ok(1));
}
