//! `tidegate auth check`: what is wrong with an `[auth]` section (the
//! errors that stop the server from starting) and what is suspicious
//! (rules that can never match, principals nobody defines).

use std::collections::BTreeSet;
use std::fmt;

use crate::{AuthConfig, AuthMode, Policy};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// The server would refuse to start with it.
    Error,
    /// It starts, but something is likely not what was meant.
    Warning,
}

/// One thing `lint` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// How bad.
    pub severity: Severity,
    /// What, naming the setting.
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{level}: {}", self.message)
    }
}

/// Checks an `[auth]` section: compiles it as the server would (reading
/// the key files it names) and looks for rules that can never match.
pub fn lint(config: &AuthConfig) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut warn = |message: String| {
        findings.push(Finding {
            severity: Severity::Warning,
            message,
        })
    };
    let known: BTreeSet<&str> = config
        .tokens
        .iter()
        .map(|t| t.principal.as_str())
        .chain(config.principals.iter().map(String::as_str))
        .chain(config.groups.values().flatten().map(String::as_str))
        .collect();
    let mut mentioned = BTreeSet::new();
    for (index, rule) in config.acl.iter().enumerate() {
        for (field, empty) in [
            ("principals", rule.principals.is_empty()),
            ("topics", rule.topics.is_empty()),
            ("operations", rule.operations.is_empty()),
        ] {
            if empty {
                warn(format!(
                    "auth.acl[{index}] has no {field}: it can never match"
                ));
            }
        }
        for p in &rule.principals {
            if p == "*" {
                continue;
            }
            if let Some(group) = p.strip_prefix("group:") {
                match config.groups.get(group) {
                    None => warn(format!(
                        "auth.acl[{index}] names group `{group}`, which auth.groups does not define: that part can never match"
                    )),
                    Some(members) => mentioned.extend(members.iter().map(String::as_str)),
                }
            } else {
                mentioned.insert(p.as_str());
                if !known.contains(p.as_str()) {
                    warn(format!(
                        "auth.acl[{index}] names principal `{p}`, which no token, group or auth.principals entry defines (a typo?)"
                    ));
                }
            }
        }
    }
    if config.mode != AuthMode::None {
        let any_wildcard = config
            .acl
            .iter()
            .any(|r| r.principals.iter().any(|p| p == "*"));
        for p in &known {
            if !any_wildcard && !mentioned.contains(p) {
                warn(format!(
                    "principal `{p}` is in no rule: it can authenticate but do nothing"
                ));
            }
        }
        if config.acl.is_empty() {
            warn("auth.acl is empty: every request of every principal is denied".into());
        }
    } else {
        if !config.acl.is_empty() || !config.tokens.is_empty() || !config.jwt_keys.is_empty() {
            warn("auth.mode is none: tokens, JWT keys and ACL rules are not used".into());
        }
    }
    if let Err(e) = Policy::from_config(config) {
        findings.push(Finding {
            severity: Severity::Error,
            message: e.to_string(),
        });
    }
    findings.sort_by_key(|f| f.severity);
    findings
}
