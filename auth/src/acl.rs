//! Access rules compiled for checking: default deny, `deny` wins over
//! `allow`, principals matched by name, group or `*`.

use std::collections::{HashMap, HashSet};
use std::fmt;

use crate::{AclRule, Effect, Pattern, PolicyError};

/// What a request does to a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// Produce.
    Produce,
    /// Fetch, ListOffsets (and, later, subscriptions and groups).
    Consume,
    /// CreateTopic, DeleteTopic (and, later, subscriptions and offsets).
    Admin,
}

impl Operation {
    /// Every operation.
    pub const ALL: [Operation; 3] = [Operation::Produce, Operation::Consume, Operation::Admin];

    /// The name used in rules and errors.
    pub fn name(self) -> &'static str {
        match self {
            Operation::Produce => "produce",
            Operation::Consume => "consume",
            Operation::Admin => "admin",
        }
    }

    fn parse_list(names: &[String]) -> Result<Vec<Operation>, String> {
        let mut ops = Vec::new();
        for name in names {
            match name.as_str() {
                "all" => ops.extend(Operation::ALL),
                other => ops.push(
                    Operation::ALL
                        .into_iter()
                        .find(|op| op.name() == other)
                        .ok_or_else(|| {
                            format!("`{other}` is not an operation: produce, consume, admin or all")
                        })?,
                ),
            }
        }
        Ok(ops)
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A request the rules do not allow: `<operation> on topic <name>`, the
/// message of a `not_authorized` response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{operation} on topic {topic}")]
pub struct Denied {
    /// What was asked.
    pub operation: Operation,
    /// On which topic.
    pub topic: String,
}

/// Whom a rule is about.
#[derive(Debug, Clone, Default)]
struct Principals {
    any: bool,
    names: HashSet<String>,
    groups: HashSet<String>,
}

#[derive(Debug, Clone)]
struct Rule {
    principals: Principals,
    topics: Vec<Pattern>,
    operations: Vec<Operation>,
    effect: Effect,
}

/// Compiled access rules.
#[derive(Debug, Clone, Default)]
pub struct Acl {
    rules: Vec<Rule>,
    /// principal → the groups it belongs to.
    memberships: HashMap<String, Vec<String>>,
}

impl Acl {
    /// Compiles rules and groups.
    ///
    /// # Errors
    ///
    /// [`PolicyError::Rule`] for a bad pattern (with its position), an
    /// unknown operation, or an empty principal name.
    pub fn compile(
        rules: &[AclRule],
        groups: &std::collections::BTreeMap<String, Vec<String>>,
    ) -> Result<Acl, PolicyError> {
        let mut compiled = Vec::with_capacity(rules.len());
        for (index, rule) in rules.iter().enumerate() {
            let bad = |reason: String| PolicyError::Rule { index, reason };
            let mut principals = Principals::default();
            for p in &rule.principals {
                if p == "*" {
                    principals.any = true;
                } else if let Some(group) = p.strip_prefix("group:") {
                    principals.groups.insert(group.to_owned());
                } else if p.is_empty() {
                    return Err(bad("an empty principal name".into()));
                } else {
                    principals.names.insert(p.clone());
                }
            }
            let topics = rule
                .topics
                .iter()
                .map(|t| Pattern::parse(t))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| bad(e.to_string()))?;
            let operations = Operation::parse_list(&rule.operations).map_err(bad)?;
            compiled.push(Rule {
                principals,
                topics,
                operations,
                effect: rule.effect,
            });
        }
        let mut memberships: HashMap<String, Vec<String>> = HashMap::new();
        for (group, members) in groups {
            for member in members {
                memberships
                    .entry(member.clone())
                    .or_default()
                    .push(group.clone());
            }
        }
        Ok(Acl {
            rules: compiled,
            memberships,
        })
    }

    /// Whether `principal` may do `operation` on `topic`.
    ///
    /// # Errors
    ///
    /// [`Denied`] when no rule allows it or a deny rule matches.
    pub fn check(&self, principal: &str, operation: Operation, topic: &str) -> Result<(), Denied> {
        let mut allowed = false;
        for rule in self.matching(principal, topic) {
            if rule.operations.contains(&operation) {
                match rule.effect {
                    Effect::Deny => {
                        allowed = false;
                        break;
                    }
                    Effect::Allow => allowed = true,
                }
            }
        }
        if allowed {
            Ok(())
        } else {
            Err(Denied {
                operation,
                topic: topic.to_owned(),
            })
        }
    }

    /// True when `principal` may do anything at all with `topic`: what
    /// describing it (DescribeTopic, and seeing it in ListTopics) needs.
    pub fn sees(&self, principal: &str, topic: &str) -> bool {
        Operation::ALL
            .into_iter()
            .any(|op| self.check(principal, op, topic).is_ok())
    }

    fn matching<'a>(
        &'a self,
        principal: &'a str,
        topic: &'a str,
    ) -> impl Iterator<Item = &'a Rule> {
        let groups = self.memberships.get(principal);
        self.rules.iter().filter(move |rule| {
            let who = &rule.principals;
            let applies = who.any
                || who.names.contains(principal)
                || groups.is_some_and(|gs| gs.iter().any(|g| who.groups.contains(g)));
            applies && rule.topics.iter().any(|p| p.matches(topic))
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn rule(principals: &[&str], topics: &[&str], ops: &[&str], effect: Effect) -> AclRule {
        let own = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        AclRule {
            principals: own(principals),
            topics: own(topics),
            operations: own(ops),
            effect,
        }
    }

    #[test]
    fn default_deny_then_allow_then_deny_wins() -> Result<(), PolicyError> {
        let groups = BTreeMap::from([("ops".to_string(), vec!["carol".to_string()])]);
        let acl = Acl::compile(
            &[
                rule(&["alice"], &["orders.*"], &["produce"], Effect::Allow),
                rule(&["group:ops"], &["*"], &["all"], Effect::Allow),
                rule(&["*"], &["secrets"], &["all"], Effect::Deny),
                rule(&["*"], &["public"], &["consume"], Effect::Allow),
            ],
            &groups,
        )?;
        assert!(acl.check("alice", Operation::Produce, "orders.eu").is_ok());
        let denied = acl.check("alice", Operation::Consume, "orders.eu");
        assert_eq!(
            denied.map_err(|d| d.to_string()),
            Err("consume on topic orders.eu".into())
        );
        assert!(acl.check("alice", Operation::Produce, "orders").is_err());
        assert!(acl.check("bob", Operation::Produce, "orders.eu").is_err());
        assert!(acl.check("carol", Operation::Admin, "anything").is_ok());
        assert!(acl.check("carol", Operation::Consume, "secrets").is_err());
        assert!(acl.check("bob", Operation::Consume, "public").is_ok());
        assert!(acl.sees("alice", "orders.eu") && !acl.sees("alice", "public.x"));
        Ok(())
    }

    #[test]
    fn bad_rules_are_refused_with_their_index() {
        let groups = BTreeMap::new();
        let bad_op = Acl::compile(&[rule(&["a"], &["t"], &["write"], Effect::Allow)], &groups);
        assert!(matches!(bad_op, Err(PolicyError::Rule { index: 0, .. })));
        let bad_topic = Acl::compile(
            &[
                rule(&["a"], &["t"], &["produce"], Effect::Allow),
                rule(&["a"], &["t t"], &["produce"], Effect::Allow),
            ],
            &groups,
        );
        match bad_topic {
            Err(PolicyError::Rule { index: 1, reason }) => {
                assert!(reason.contains("byte 1"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
    }
}
