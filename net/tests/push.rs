//! Open responses (push streams) against a real quinn client: written
//! frame by frame, ended by the server's finish, by the client's
//! STOP_SENDING, or by the connection's loss.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{cell::RefCell, rc::Rc, sync::mpsc, time::Duration};

use bytes::Bytes;
use common::{call, client, frame, spawn, tokio_rt};
use tidegate_net::{QuicServer, QuicSettings, ResponseStream};

/// What the push application reports to the test.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    /// The open stream closed.
    Closed,
    /// A `more` was written (true) or refused (false).
    More(bool),
    /// The flood is over: the most bytes it ever had waiting unsent.
    Flooded(usize),
}

/// What a flood sends: `FLOOD_FRAMES` frames of `FLOOD_FRAME` bytes, each
/// after waiting until at most `FLOOD_ROOM` bytes wait unsent.
const FLOOD_FRAME: usize = 64 << 10;
const FLOOD_FRAMES: usize = 512;
const FLOOD_ROOM: usize = 256 << 10;

/// A server whose requests end in a command: `open` keeps the response
/// open and writes `hello`; `more` writes `more` on it (and answers
/// `ok`); `finish` writes `bye` and finishes it; anything else is echoed.
fn push_app(settings: QuicSettings, seen: mpsc::Sender<Seen>) -> common::EchoServer {
    spawn(settings, move |server: QuicServer| async move {
        let open: Rc<RefCell<Option<ResponseStream>>> = Rc::default();
        let responder = server.responder();
        while let Some(req) = server.next_request().await {
            let command = req.data.get(8..).unwrap_or_default().to_vec();
            let ok = vec![Bytes::from_static(b"ok")];
            match command.as_slice() {
                b"open" => {
                    let stream = responder.open_stream(req.conn, req.stream).unwrap();
                    // Answered already: a second open of the same request fails.
                    assert!(responder.open_stream(req.conn, req.stream).is_none());
                    assert!(stream.send(vec![Bytes::from_static(b"hello")]));
                    let closed = stream.closed();
                    *open.borrow_mut() = Some(stream);
                    let seen = seen.clone();
                    glommio::spawn_local(async move {
                        closed.await;
                        let _ = seen.send(Seen::Closed);
                    })
                    .detach();
                }
                b"flood" => {
                    let stream = responder.open_stream(req.conn, req.stream).unwrap();
                    let seen = seen.clone();
                    glommio::spawn_local(async move {
                        let frame = Bytes::from(vec![7u8; FLOOD_FRAME]);
                        let mut most = 0;
                        for _ in 0..FLOOD_FRAMES {
                            stream.writable(FLOOD_ROOM).await;
                            assert!(stream.send(vec![frame.clone()]));
                            most = most.max(stream.unsent_bytes());
                        }
                        let _ = seen.send(Seen::Flooded(most));
                        stream.finish(Vec::new());
                    })
                    .detach();
                }
                b"more" => {
                    if let Some(stream) = open.borrow().as_ref() {
                        let parts = vec![Bytes::from_static(b"mo"), Bytes::from_static(b"re")];
                        let _ = seen.send(Seen::More(stream.send(parts)));
                    }
                    server.respond(req.conn, req.stream, ok);
                }
                b"finish" => {
                    let stream = open.borrow_mut().take().unwrap();
                    stream.finish(vec![Bytes::from_static(b"bye")]);
                    server.respond(req.conn, req.stream, ok);
                }
                _ => server.respond(req.conn, req.stream, vec![Bytes::from(req.data)]),
            }
        }
    })
}

async fn read_exactly(recv: &mut quinn::RecvStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0; n];
    tokio::time::timeout(Duration::from_secs(10), recv.read_exact(&mut buf))
        .await
        .expect("timed out reading the push stream")
        .unwrap();
    buf
}

async fn connect(server: &common::EchoServer) -> (quinn::Endpoint, quinn::Connection) {
    let endpoint = client(&server.cert);
    let conn = endpoint
        .connect(server.addr, "localhost")
        .unwrap()
        .await
        .unwrap();
    (endpoint, conn)
}

/// Opens a push stream and reads its first frame (`hello`).
async fn open_push(conn: &quinn::Connection) -> (quinn::SendStream, quinn::RecvStream) {
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    send.write_all(&frame(b"open")).await.unwrap();
    send.finish().unwrap();
    assert_eq!(read_exactly(&mut recv, 5).await, b"hello");
    (send, recv)
}

/// The application's next report (10 s at most), off the runtime that
/// has to keep the connection going meanwhile; the receiver comes back.
async fn next_seen(seen: mpsc::Receiver<Seen>) -> (Option<Seen>, mpsc::Receiver<Seen>) {
    tokio::task::spawn_blocking(move || (seen.recv_timeout(Duration::from_secs(10)).ok(), seen))
        .await
        .unwrap()
}

#[test]
fn an_open_response_is_written_frame_by_frame_between_other_requests_until_the_client_stops_it() {
    let (tx, seen) = mpsc::channel();
    let server = push_app(QuicSettings::default(), tx);
    tokio_rt().block_on(async {
        let (_endpoint, conn) = connect(&server).await;
        let (_send, mut recv) = open_push(&conn).await;
        for _ in 0..3 {
            assert_eq!(call(&conn, &frame(b"more")).await.unwrap(), b"ok");
            assert_eq!(read_exactly(&mut recv, 4).await, b"more");
            assert_eq!(seen.try_recv(), Ok(Seen::More(true)));
        }
        recv.stop(0u32.into()).unwrap();
        let (got, seen) = next_seen(seen).await;
        assert_eq!(got, Some(Seen::Closed));
        // Writing to it now is refused.
        assert_eq!(call(&conn, &frame(b"more")).await.unwrap(), b"ok");
        assert_eq!(seen.try_recv(), Ok(Seen::More(false)));
        // The connection goes on serving.
        assert_eq!(call(&conn, &frame(b"echo")).await.unwrap(), frame(b"echo"));
    });
}

#[test]
fn a_finished_push_stream_ends_with_its_last_frame() {
    let (tx, _seen) = mpsc::channel();
    let server = push_app(QuicSettings::default(), tx);
    tokio_rt().block_on(async {
        let (_endpoint, conn) = connect(&server).await;
        let (_send, mut recv) = open_push(&conn).await;
        assert_eq!(call(&conn, &frame(b"finish")).await.unwrap(), b"ok");
        let rest = tokio::time::timeout(Duration::from_secs(10), recv.read_to_end(1024))
            .await
            .expect("the stream was not finished")
            .unwrap();
        assert_eq!(rest, b"bye");
    });
}

#[test]
fn a_lost_connection_closes_its_push_streams() {
    let (tx, seen) = mpsc::channel();
    let server = push_app(QuicSettings::default(), tx);
    tokio_rt().block_on(async {
        let (_endpoint, conn) = connect(&server).await;
        let (_send, _recv) = open_push(&conn).await;
        conn.close(0u32.into(), b"bye");
        assert_eq!(next_seen(seen).await.0, Some(Seen::Closed));
    });
}

#[test]
fn an_open_push_stream_holds_none_of_the_request_budget() {
    let (tx, _seen) = mpsc::channel();
    // Room for one small request at a time: were the open stream still
    // holding its request's bytes, every later request would wait for
    // ever.
    let settings = QuicSettings {
        max_inflight_bytes: 16,
        ..QuicSettings::default()
    };
    let server = push_app(settings, tx);
    tokio_rt().block_on(async {
        let (_endpoint, conn) = connect(&server).await;
        let (_send, _recv) = open_push(&conn).await;
        for _ in 0..5 {
            let echoed = tokio::time::timeout(Duration::from_secs(10), call(&conn, &frame(b"x")))
                .await
                .expect("a request waited behind the open stream");
            assert_eq!(echoed.unwrap(), frame(b"x"));
        }
    });
}

#[test]
fn a_writer_that_waits_for_room_holds_a_bounded_backlog_for_a_slow_reader() {
    let (tx, seen) = mpsc::channel();
    let server = push_app(QuicSettings::default(), tx);
    tokio_rt().block_on(async {
        let (_endpoint, conn) = connect(&server).await;
        let (mut send, mut recv) = conn.open_bi().await.unwrap();
        send.write_all(&frame(b"flood")).await.unwrap();
        send.finish().unwrap();
        // 32 MiB, far more than QUIC's windows hold: the writer waits for
        // the reader, in small reads.
        let mut total = 0;
        let mut buf = vec![0u8; 4096];
        loop {
            let read = tokio::time::timeout(Duration::from_secs(20), recv.read(&mut buf))
                .await
                .expect("the flood stalled")
                .unwrap();
            match read {
                Some(n) => total += n,
                None => break,
            }
        }
        assert_eq!(total, FLOOD_FRAME * FLOOD_FRAMES);
    });
    let Ok(Seen::Flooded(most)) = seen.recv_timeout(Duration::from_secs(10)) else {
        panic!("no flood report");
    };
    assert!(
        most <= FLOOD_ROOM + FLOOD_FRAME,
        "{most} bytes waited unsent"
    );
}
