//! Bearer-token credentials, and when a connection authenticates again.
//!
//! The exchange itself (an Authenticate request on its own stream) lives
//! with the other stream code in `client.rs`; what is here needs no
//! connection: where tokens come from and the refresh schedule.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::{BoxError, Error, Result};

/// The shortest time between two authentications of one connection, even
/// when the server says the token expires sooner (or is already expired,
/// by the client's clock): bounds how often a skewed clock can make the
/// client re-authenticate.
pub(crate) const REFRESH_MIN: Duration = Duration::from_secs(1);

/// How long after a failed re-authentication (the callback failed, or the
/// server refused the new token) the client tries again, while the old
/// authentication may still be valid.
pub(crate) const REFRESH_RETRY: Duration = Duration::from_secs(5);

/// The token a [`Client`](crate::Client) presents to the server with an
/// Authenticate request, first on every new connection (before any other
/// request goes out on it) and again before the authentication lapses.
///
/// Give it to [`Client::connect_with`](crate::Client::connect_with). Its
/// `Debug` output never shows the token.
///
/// # Example
///
/// ```
/// use tidegate_client::Credentials;
///
/// // A static token, e.g. from an environment variable.
/// let fixed = Credentials::token("s3cr3t");
/// // A JWT read afresh on every connect and before the last one expires.
/// let jwt = Credentials::token_fn(|| Ok(std::fs::read_to_string("/run/secrets/tidegate.jwt")?.trim().to_owned()));
/// assert!(!format!("{fixed:?}").contains("s3cr3t"));
/// # let _ = jwt;
/// ```
#[derive(Clone)]
pub struct Credentials {
    source: TokenSource,
}

/// The callback of [`Credentials::token_fn`].
type TokenFn = dyn Fn() -> Result<String, BoxError> + Send + Sync;

#[derive(Clone)]
enum TokenSource {
    Static(Arc<str>),
    Callback(Arc<TokenFn>),
}

impl Credentials {
    /// Always this token (a static token, or a JWT that outlives the
    /// client). When the server says it expires, the client presents it
    /// again before then, which only helps if the server changed its mind;
    /// use [`token_fn`](Credentials::token_fn) for tokens that expire.
    pub fn token(token: impl Into<String>) -> Self {
        Self {
            source: TokenSource::Static(Arc::from(token.into())),
        }
    }

    /// A token from `fetch`, called for every Authenticate: on every
    /// connect and reconnect, before the server's `expires_at_ms` for the
    /// previous one (at 90% of its remaining lifetime), and once more when
    /// a request is refused with `not_authenticated` (the request is then
    /// sent once more).
    ///
    /// `fetch` runs on tokio's blocking pool, so it may block (read a file,
    /// ask a token service synchronously). An error from it fails the
    /// connect with [`Error::Credentials`]; when a refresh fails, the
    /// connection keeps its current authentication and the client tries
    /// again a few seconds later.
    pub fn token_fn(fetch: impl Fn() -> Result<String, BoxError> + Send + Sync + 'static) -> Self {
        Self {
            source: TokenSource::Callback(Arc::new(fetch)),
        }
    }

    /// True for an empty static token: a command line's `TIDEGATE_TOKEN=`
    /// means no token rather than one the server refuses.
    pub fn is_empty(&self) -> bool {
        matches!(&self.source, TokenSource::Static(token) if token.is_empty())
    }

    /// True when asking again may give a different token.
    pub(crate) fn renews(&self) -> bool {
        matches!(self.source, TokenSource::Callback(_))
    }

    /// The token to present now.
    pub(crate) async fn fetch(&self) -> Result<Arc<str>> {
        match &self.source {
            TokenSource::Static(token) => Ok(token.clone()),
            TokenSource::Callback(fetch) => {
                let fetch = fetch.clone();
                match tokio::task::spawn_blocking(move || fetch()).await {
                    Ok(Ok(token)) => Ok(Arc::from(token)),
                    Ok(Err(e)) => Err(Error::Credentials(e)),
                    Err(join) => Err(Error::Credentials(
                        format!("the token callback failed: {join}").into(),
                    )),
                }
            }
        }
    }
}

/// A static token from a command-line flag or an environment variable
/// (clap parses `--token` into `Credentials` with this).
impl std::str::FromStr for Credentials {
    type Err = std::convert::Infallible;

    fn from_str(token: &str) -> std::result::Result<Self, Self::Err> {
        Ok(Credentials::token(token))
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.source {
            TokenSource::Static(_) => f.write_str("Credentials::token(<redacted>)"),
            TokenSource::Callback(_) => f.write_str("Credentials::token_fn(..)"),
        }
    }
}

/// How long after an authentication that lapses at `expires_at_ms` (ms
/// since the Unix epoch, by the server) to authenticate again, at `now_ms`
/// by the client's clock: after 90% of the time left, and not sooner than
/// [`REFRESH_MIN`].
pub(crate) fn refresh_after(now_ms: u64, expires_at_ms: u64) -> Duration {
    let left_ms = expires_at_ms.saturating_sub(now_ms);
    Duration::from_millis(left_ms - left_ms / 10).max(REFRESH_MIN)
}

/// Milliseconds since the Unix epoch by the client's clock (0 if the clock
/// is before 1970, which only makes a refresh come early).
pub(crate) fn unix_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_comes_at_ninety_percent_of_the_time_left() {
        assert_eq!(
            refresh_after(1_000_000, 1_000_000 + 600_000),
            Duration::from_millis(540_000)
        );
    }

    #[test]
    fn refresh_waits_at_least_the_minimum_even_for_an_expired_token() {
        assert_eq!(refresh_after(2_000, 2_500), REFRESH_MIN);
        assert_eq!(refresh_after(5_000, 1_000), REFRESH_MIN);
        assert_eq!(refresh_after(0, 0), REFRESH_MIN);
    }

    #[test]
    fn debug_output_hides_the_token() {
        let shown = format!("{:?}", Credentials::token("hunter2-secret"));
        assert!(!shown.contains("hunter2"), "{shown}");
        let shown = format!("{:?}", Credentials::token_fn(|| Ok("x".into())));
        assert_eq!(shown, "Credentials::token_fn(..)");
    }

    #[test]
    fn a_flag_parses_into_a_static_token_and_empty_means_none() {
        let parsed: Credentials = "abc".parse().unwrap_or_else(|never| match never {});
        assert!(!parsed.is_empty() && !parsed.renews());
        let empty: Credentials = "".parse().unwrap_or_else(|never| match never {});
        assert!(empty.is_empty());
        assert!(!Credentials::token_fn(|| Ok(String::new())).is_empty());
    }

    #[test]
    fn only_a_callback_renews() {
        assert!(!Credentials::token("t").renews());
        assert!(Credentials::token_fn(|| Ok("t".into())).renews());
    }

    #[tokio::test]
    async fn static_token_is_presented_as_given() {
        let token = Credentials::token("abc")
            .fetch()
            .await
            .unwrap_or_else(|e| panic!("static: {e}"));
        assert_eq!(&*token, "abc");
    }

    #[tokio::test]
    async fn callback_is_asked_on_every_fetch() {
        let calls = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let counter = calls.clone();
        let credentials = Credentials::token_fn(move || {
            let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(format!("jwt-{n}"))
        });
        assert_eq!(
            &*credentials
                .fetch()
                .await
                .unwrap_or_else(|e| panic!("first: {e}")),
            "jwt-0"
        );
        assert_eq!(
            &*credentials
                .clone()
                .fetch()
                .await
                .unwrap_or_else(|e| panic!("second: {e}")),
            "jwt-1"
        );
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn callback_error_or_panic_is_a_credentials_error() {
        let failing = Credentials::token_fn(|| Err("vault unreachable".into()));
        let Err(e) = failing.fetch().await else {
            panic!("callback failed: fetched a token")
        };
        assert!(matches!(e, Error::Credentials(_)), "{e:?}");
        assert_eq!(e.to_string(), "cannot get a token: vault unreachable");
        assert!(!e.is_retriable());

        let panicking = Credentials::token_fn(|| panic!("bug in the callback"));
        let Err(e) = panicking.fetch().await else {
            panic!("callback panicked: fetched a token")
        };
        assert!(matches!(e, Error::Credentials(_)), "{e:?}");
    }
}
