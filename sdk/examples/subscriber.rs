//! Receives a topic's messages through a subscription, queue style: each
//! message is leased, acked when handled, and delivered again if not
//! (docs/SEMANTICS.md §5). Start it in two terminals: they share the
//! subscription's messages.
//!
//! ```text
//! cargo run --release -- serve
//! TIDEGATE_CA=tidegate-data/tls/dev-cert.pem \
//!     cargo run -p tidegate-client --example produce -- orders 1000
//! TIDEGATE_CA=tidegate-data/tls/dev-cert.pem \
//!     cargo run -p tidegate-client --example subscriber -- orders billing
//! ```
//!
//! Arguments: `[TOPIC] [SUBSCRIPTION]` (default `orders`, `example`); the
//! subscription is created, from the earliest message, if it does not
//! exist. Ctrl-C stops. Environment: `TIDEGATE_ADDR` (default
//! `127.0.0.1:7441`) and `TIDEGATE_CA`, the PEM file of the CA to trust;
//! without it the example trusts any certificate, which is for
//! development only. `tidegate sub describe SUBSCRIPTION` shows the
//! backlog.

use std::error::Error as StdError;

use tidegate_client::{
    Client, Error, ErrorCode, StartPosition, Subscriber, SubscriberConfig, SubscriptionConfig, Tls,
};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn StdError>> {
    let mut args = std::env::args().skip(1);
    let topic = args.next().unwrap_or_else(|| "orders".to_owned());
    let name = args.next().unwrap_or_else(|| "example".to_owned());

    let client = connect().await?;
    let config = SubscriptionConfig {
        start: StartPosition::Earliest,
        ..SubscriptionConfig::new(&name, &topic)
    };
    match client.create_subscription(&config).await {
        Ok(()) => println!("created subscription {name} on {topic}"),
        Err(Error::Server {
            code: ErrorCode::SubscriptionExists,
            ..
        }) => {}
        Err(e) => return Err(e.into()),
    }

    let mut subscriber =
        Subscriber::new(client.clone(), &name, SubscriberConfig::default()).await?;
    let mut acked = 0u64;
    loop {
        let message = tokio::select! {
            message = subscriber.next() => message?,
            _ = tokio::signal::ctrl_c() => break,
        };
        if message.attempt > 1 {
            println!(
                "{}@{} again (attempt {})",
                message.partition, message.offset, message.attempt
            );
        }
        // Handle the message here; a message dropped without ack() is
        // nacked and comes again after the subscription's backoff.
        message.ack().await?;
        acked += 1;
        if acked % 1_000 == 0 {
            println!("acked {acked}");
        }
    }
    // Gives back what it had pulled but not handed out.
    subscriber.close().await?;
    client.close().await;
    println!("acked {acked} messages");
    Ok(())
}

/// Connects to `TIDEGATE_ADDR`, trusting `TIDEGATE_CA` if set.
async fn connect() -> Result<Client, Box<dyn StdError>> {
    let addr = std::env::var("TIDEGATE_ADDR").unwrap_or_else(|_| "127.0.0.1:7441".to_owned());
    let tls = match std::env::var_os("TIDEGATE_CA") {
        Some(path) => Tls::ca_file(path),
        None => Tls::insecure_dev(),
    };
    Ok(Client::connect(addr.parse()?, tls).await?)
}
