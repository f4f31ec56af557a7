//! Reads a topic from its earliest message and prints each message.
//!
//! Start a development server and produce something first:
//!
//! ```text
//! cargo run --release -- serve
//! TIDEGATE_CA=tidegate-data/tls/dev-cert.pem \
//!     cargo run -p tidegate-client --example produce -- orders 1000
//! ```
//!
//! then read it back (stops after 1000 messages; without a limit it waits
//! for new messages until Ctrl-C):
//!
//! ```text
//! TIDEGATE_CA=tidegate-data/tls/dev-cert.pem \
//!     cargo run -p tidegate-client --example consume -- orders 1000
//! ```
//!
//! Arguments: `[TOPIC] [LIMIT]` (default `orders`, no limit). Environment:
//! `TIDEGATE_ADDR` (default `127.0.0.1:7441`) and `TIDEGATE_CA`, the PEM
//! file of the CA to trust; without it the example trusts any
//! certificate, which is for development only.

use std::error::Error as StdError;

use tidegate_client::{Client, Consumer, ConsumerConfig, Start, Tls};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn StdError>> {
    let mut args = std::env::args().skip(1);
    let topic = args.next().unwrap_or_else(|| "orders".to_owned());
    let limit: Option<u64> = args.next().map(|n| n.parse()).transpose()?;

    let client = connect().await?;
    // Every partition, from the first message still stored. Fetches run
    // ahead in the background; after a server restart they go on from
    // where they were.
    let config = ConsumerConfig {
        start: Start::Earliest,
        ..ConsumerConfig::default()
    };
    let mut consumer = Consumer::new(client.clone(), &topic, config).await?;

    let mut read = 0u64;
    while limit.is_none_or(|limit| read < limit) {
        // `next` waits for new messages at the end of the topic.
        let Some(message) = consumer.next().await? else {
            break;
        };
        let text = |bytes: Option<&bytes::Bytes>| {
            bytes.map_or("-".into(), |b| String::from_utf8_lossy(b).into_owned())
        };
        println!(
            "{}@{} key={} value={}",
            message.partition(),
            message.offset(),
            text(message.key()),
            text(message.value()),
        );
        read += 1;
    }
    consumer.close().await;
    client.close().await;
    println!("read {read} messages");
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
