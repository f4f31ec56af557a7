//! Subscription definitions in the catalog (docs/SEMANTICS.md §5): names,
//! topics and delivery settings. Their acknowledgement state is not here;
//! it lives in each partition's cursor journal, keyed by the id.

use tidegate_proto::{
    filter::Filter,
    protocol::{StartPosition, SubscriptionConfig},
};

use super::{Catalog, CatalogError};

/// Most subscriptions one catalog holds.
pub const SUBSCRIPTIONS_MAX: usize = 10_000;

/// Where a subscription starts, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub enum Start {
    Earliest,
    /// The latest offset when the subscription was created.
    Latest,
    Offset(u64),
    Timestamp(i64),
}

/// One subscription's durable definition.
#[derive(Debug, Clone, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct SubscriptionMeta {
    /// Unique for the life of the data directory (shared with topic ids):
    /// a subscription deleted and created again under the same name starts
    /// afresh.
    pub id: u64,
    pub name: String,
    pub topic: String,
    /// The filter's text (docs/FILTERS.md); empty delivers everything.
    pub filter: String,
    pub ack_deadline_ms: u32,
    /// 0 retries for ever.
    pub max_deliveries: u32,
    /// Empty for none.
    pub dead_letter_topic: String,
    pub ordering: bool,
    pub priority: bool,
    pub backoff_min_ms: u32,
    pub backoff_max_ms: u32,
    /// 0 for none.
    pub delivery_delay_ms: u32,
    pub dead_letter_expired: bool,
    pub start: Start,
    pub created_ms: i64,
}

impl SubscriptionMeta {
    /// The definition `config` asks for, with its id and creation time.
    pub fn new(config: &SubscriptionConfig<'_>, id: u64, created_ms: i64) -> SubscriptionMeta {
        SubscriptionMeta {
            id,
            name: config.name.into(),
            topic: config.topic.into(),
            filter: config.filter.into(),
            ack_deadline_ms: config.ack_deadline_ms,
            max_deliveries: config.max_deliveries,
            dead_letter_topic: config.dead_letter_topic.into(),
            ordering: config.ordering,
            priority: config.priority,
            backoff_min_ms: config.backoff_min_ms,
            backoff_max_ms: config.backoff_max_ms,
            delivery_delay_ms: config.delivery_delay_ms,
            dead_letter_expired: config.dead_letter_expired,
            start: match config.start {
                StartPosition::Earliest => Start::Earliest,
                StartPosition::Latest => Start::Latest,
                StartPosition::Offset(o) => Start::Offset(o),
                StartPosition::Timestamp(t) => Start::Timestamp(t),
            },
            created_ms,
        }
    }

    /// The definition as the protocol carries it.
    pub fn to_config(&self) -> SubscriptionConfig<'_> {
        SubscriptionConfig {
            name: &self.name,
            topic: &self.topic,
            filter: &self.filter,
            ack_deadline_ms: self.ack_deadline_ms,
            max_deliveries: self.max_deliveries,
            dead_letter_topic: &self.dead_letter_topic,
            ordering: self.ordering,
            priority: self.priority,
            backoff_min_ms: self.backoff_min_ms,
            backoff_max_ms: self.backoff_max_ms,
            delivery_delay_ms: self.delivery_delay_ms,
            dead_letter_expired: self.dead_letter_expired,
            start: match self.start {
                Start::Earliest => StartPosition::Earliest,
                Start::Latest => StartPosition::Latest,
                Start::Offset(o) => StartPosition::Offset(o),
                Start::Timestamp(t) => StartPosition::Timestamp(t),
            },
        }
    }

    /// The compiled filter; `None` delivers everything.
    pub fn compiled_filter(&self) -> Result<Option<Filter>, CatalogError> {
        if self.filter.is_empty() {
            return Ok(None);
        }
        Filter::parse(&self.filter)
            .map(Some)
            .map_err(|e| CatalogError::InvalidFilter {
                reason: e.to_string(),
            })
    }
}

impl Catalog {
    /// The subscription named `name`.
    pub fn subscription(&self, name: &str) -> Option<&SubscriptionMeta> {
        self.subscriptions.get(name)
    }

    /// Every subscription, ordered by name.
    pub fn subscriptions(&self) -> impl Iterator<Item = &SubscriptionMeta> {
        self.subscriptions.values()
    }

    /// Creates a subscription; on error the catalog is unchanged. Its
    /// topic and dead-letter topic must exist, and its filter must parse.
    pub fn create_subscription(
        &mut self,
        config: &SubscriptionConfig<'_>,
        now_ms: i64,
    ) -> Result<SubscriptionMeta, CatalogError> {
        config
            .validate()
            .map_err(|e| CatalogError::InvalidSubscription {
                setting: "definition",
                reason: e.to_string(),
            })?;
        if self.subscriptions.contains_key(config.name) {
            return Err(CatalogError::SubscriptionExists {
                name: config.name.into(),
            });
        }
        if self.subscriptions.len() >= SUBSCRIPTIONS_MAX {
            return Err(CatalogError::TooManySubscriptions {
                max: SUBSCRIPTIONS_MAX,
            });
        }
        for topic in [config.topic, config.dead_letter_topic] {
            if !topic.is_empty() && !self.topics.contains_key(topic) {
                return Err(CatalogError::UnknownTopic { name: topic.into() });
            }
        }
        let next_id = self
            .next_id
            .checked_add(1)
            .ok_or(CatalogError::IdsExhausted)?;
        let meta = SubscriptionMeta::new(config, self.next_id, now_ms);
        meta.compiled_filter()?;
        self.next_id = next_id;
        self.version += 1;
        self.subscriptions.insert(meta.name.clone(), meta.clone());
        Ok(meta)
    }

    /// Deletes a subscription and returns what it was; on error the
    /// catalog is unchanged.
    pub fn delete_subscription(&mut self, name: &str) -> Result<SubscriptionMeta, CatalogError> {
        let meta = self
            .subscriptions
            .remove(name)
            .ok_or_else(|| CatalogError::UnknownSubscription { name: name.into() })?;
        self.version += 1;
        Ok(meta)
    }

    /// What a decoded catalog's subscriptions must satisfy.
    pub(super) fn check_subscriptions(&self) -> Result<(), String> {
        if self.subscriptions.len() > SUBSCRIPTIONS_MAX {
            return Err(format!(
                "{} subscriptions, more than {SUBSCRIPTIONS_MAX}",
                self.subscriptions.len()
            ));
        }
        for (name, meta) in &self.subscriptions {
            if *name != meta.name {
                return Err(format!(
                    "subscription stored as {name:?} is named {:?}",
                    meta.name
                ));
            }
            if meta.id == 0 || meta.id >= self.next_id {
                return Err(format!("subscription {name:?} has id {}", meta.id));
            }
            meta.to_config()
                .validate()
                .map_err(|e| format!("subscription {name:?}: {e}"))?;
            if !self.topics.contains_key(&meta.topic) {
                return Err(format!(
                    "subscription {name:?} of unknown topic {:?}",
                    meta.topic
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::TopicSettings;

    fn catalog() -> Catalog {
        let mut c = Catalog::default();
        for topic in ["orders", "orders.dlq"] {
            c.create_topic(topic, 2, TopicSettings::default(), 0)
                .unwrap_or_else(|e| panic!("{e}"));
        }
        c
    }

    #[test]
    fn subscriptions_are_created_checked_and_deleted() {
        let mut c = catalog();
        let config = SubscriptionConfig {
            filter: "region = \"eu\"",
            max_deliveries: 3,
            dead_letter_topic: "orders.dlq",
            ..SubscriptionConfig::new("audit", "orders")
        };
        let meta = c
            .create_subscription(&config, 7)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(meta.to_config(), config);
        assert_eq!(c.subscription("audit"), Some(&meta));
        assert!(matches!(
            c.create_subscription(&config, 8),
            Err(CatalogError::SubscriptionExists { .. })
        ));
        let bad_filter = SubscriptionConfig {
            filter: "region = ",
            ..SubscriptionConfig::new("b", "orders")
        };
        let before = c.clone();
        match c.create_subscription(&bad_filter, 8) {
            Err(CatalogError::InvalidFilter { reason }) => {
                assert!(reason.contains("byte"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        let no_topic = SubscriptionConfig::new("c", "nope");
        assert!(matches!(
            c.create_subscription(&no_topic, 8),
            Err(CatalogError::UnknownTopic { .. })
        ));
        assert_eq!(c, before);
        let bytes = c.to_bytes().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(Catalog::from_bytes(&bytes), Ok(c.clone()));
        assert_eq!(c.delete_subscription("audit"), Ok(meta));
        assert!(matches!(
            c.delete_subscription("audit"),
            Err(CatalogError::UnknownSubscription { .. })
        ));
    }

    #[test]
    fn deleting_a_topic_deletes_its_subscriptions() {
        let mut c = catalog();
        c.create_subscription(&SubscriptionConfig::new("a", "orders"), 0)
            .unwrap_or_else(|e| panic!("{e}"));
        c.delete_topic("orders").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.subscriptions().count(), 0);
    }
}
