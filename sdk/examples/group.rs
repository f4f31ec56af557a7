//! Reads a topic as a member of a consumer group: start it in two or three
//! terminals and watch the partitions spread over the members, and move
//! when one stops (docs/SEMANTICS.md §4).
//!
//! ```text
//! cargo run --release -- serve
//! TIDEGATE_CA=tidegate-data/tls/dev-cert.pem \
//!     cargo run -p tidegate-client --example produce -- orders 100000
//! TIDEGATE_CA=tidegate-data/tls/dev-cert.pem \
//!     cargo run -p tidegate-client --example group -- orders billing
//! ```
//!
//! Arguments: `[TOPIC] [GROUP]` (default `orders`, `example`). Ctrl-C
//! stops the member; the next one resumes from its commits. Environment:
//! `TIDEGATE_ADDR` (default `127.0.0.1:7441`) and `TIDEGATE_CA`, the PEM
//! file of the CA to trust; without it the example trusts any
//! certificate, which is for development only. `tidegate group describe
//! GROUP` shows the members, their partitions and the lag.

use std::error::Error as StdError;

use tidegate_client::{Client, GroupConfig, GroupConsumer, Start, Tls};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn StdError>> {
    let mut args = std::env::args().skip(1);
    let topic = args.next().unwrap_or_else(|| "orders".to_owned());
    let group = args.next().unwrap_or_else(|| "example".to_owned());

    let client = connect().await?;
    let config = GroupConfig {
        // A group that never committed starts at the first message.
        reset: Start::Earliest,
        ..GroupConfig::new(group)
    };
    let mut member = GroupConsumer::join(client.clone(), &topic, config).await?;
    println!(
        "member {} holds {:?}",
        member.member_id(),
        member.assignment()
    );

    let mut held = member.assignment();
    let mut read = 0u64;
    loop {
        let next = tokio::select! {
            next = member.next() => next?,
            _ = tokio::signal::ctrl_c() => break,
        };
        let Some(message) = next else { break };
        read += 1;
        if member.assignment() != held {
            held = member.assignment();
            println!("now holds {held:?}");
        }
        if read % 10_000 == 0 {
            println!(
                "read {read}, last {}@{}",
                message.partition(),
                message.offset()
            );
        }
    }
    // Commits what was read and leaves: the others take its partitions.
    member.close().await?;
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
