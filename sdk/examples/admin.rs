//! Creates, lists, describes and deletes topics.
//!
//! Start a development server in one terminal:
//!
//! ```text
//! cargo run --release -- serve
//! ```
//!
//! then, in another:
//!
//! ```text
//! export TIDEGATE_CA=tidegate-data/tls/dev-cert.pem
//! cargo run -p tidegate-client --example admin -- create orders 4
//! cargo run -p tidegate-client --example admin -- list
//! cargo run -p tidegate-client --example admin -- describe orders
//! cargo run -p tidegate-client --example admin -- delete orders
//! ```
//!
//! Environment: `TIDEGATE_ADDR` (default `127.0.0.1:7441`) and
//! `TIDEGATE_CA`, the PEM file of the CA to trust; without it the example
//! trusts any certificate, which is for development only.

use std::error::Error as StdError;

use tidegate_client::{Client, Tls};

const USAGE: &str = "usage: admin create TOPIC PARTITIONS | list | describe TOPIC | delete TOPIC";

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn StdError>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();

    let client = connect().await?;
    match args.as_slice() {
        ["create", topic, partitions] => {
            client.create_topic(topic, partitions.parse()?).await?;
            println!("created {topic}");
        }
        ["list"] => {
            for topic in client.list_topics().await? {
                println!("{} ({} partitions)", topic.name, topic.partitions);
            }
        }
        ["describe", topic] => {
            let description = client.describe_topic(topic).await?;
            println!("{}", description.name);
            for p in &description.partitions {
                // `latest` is the high watermark: the next offset written.
                println!(
                    "  partition {}: earliest {}, latest {}, durable {}",
                    p.partition, p.earliest, p.latest, p.durable
                );
            }
        }
        ["delete", topic] => {
            client.delete_topic(topic).await?;
            println!("deleted {topic}");
        }
        _ => {
            client.close().await;
            return Err(USAGE.into());
        }
    }
    client.close().await;
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
