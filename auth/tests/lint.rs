//! `lint`: errors the server would refuse to start with, and warnings for
//! rules that can never match.

use tidegate_auth::{lint, AuthConfig, Severity};

fn parse(text: &str) -> Result<AuthConfig, toml::de::Error> {
    toml::from_str(text)
}

#[test]
fn a_clean_config_has_no_findings() -> Result<(), toml::de::Error> {
    let config = parse(&format!(
        r#"
        mode = "token"
        principals = ["alice"]
        [[tokens]]
        principal = "svc"
        hash = "{}"
        [groups]
        ops = ["alice"]
        [[acl]]
        principals = ["svc"]
        topics = ["orders.*"]
        operations = ["produce"]
        [[acl]]
        principals = ["group:ops"]
        topics = ["*"]
        operations = ["all"]
        "#,
        tidegate_auth::hash_token("t")
    ))?;
    assert_eq!(lint(&config), vec![]);
    Ok(())
}

#[test]
fn unknown_principals_groups_and_empty_rules_are_warned() -> Result<(), toml::de::Error> {
    let config = parse(&format!(
        r#"
        mode = "token"
        [[tokens]]
        principal = "svc"
        hash = "{}"
        [[acl]]
        principals = ["svc", "sevc", "group:nobody"]
        topics = ["orders"]
        operations = ["produce"]
        [[acl]]
        principals = ["svc"]
        topics = []
        operations = ["consume"]
        "#,
        tidegate_auth::hash_token("t")
    ))?;
    let findings = lint(&config);
    let text: Vec<String> = findings.iter().map(|f| f.to_string()).collect();
    assert!(
        findings.iter().all(|f| f.severity == Severity::Warning),
        "{text:?}"
    );
    assert!(text.iter().any(|t| t.contains("`sevc`")), "{text:?}");
    assert!(
        text.iter().any(|t| t.contains("group `nobody`")),
        "{text:?}"
    );
    assert!(
        text.iter().any(|t| t.contains("auth.acl[1] has no topics")),
        "{text:?}"
    );
    Ok(())
}

#[test]
fn what_stops_the_server_is_an_error() -> Result<(), toml::de::Error> {
    let config = parse(
        r#"
        mode = "token"
        [[tokens]]
        principal = "svc"
        hash = "sha256:nothex"
        [[acl]]
        principals = ["svc"]
        topics = ["bad topic"]
        operations = ["produce"]
        "#,
    )?;
    let findings = lint(&config);
    assert_eq!(
        findings.first().map(|f| f.severity),
        Some(Severity::Error),
        "{findings:?}"
    );
    Ok(())
}

#[test]
fn rules_without_auth_are_pointed_out() -> Result<(), toml::de::Error> {
    let config = parse(
        r#"
        [[acl]]
        principals = ["*"]
        topics = ["*"]
        operations = ["all"]
        "#,
    )?;
    let findings = lint(&config);
    assert!(
        findings.iter().any(|f| f.message.contains("mode is none")),
        "{findings:?}"
    );
    Ok(())
}
