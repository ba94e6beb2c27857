//! Hello v2 in the talk service: the JWT Nextcloud hands its clients,
//! checked with the key from the stand-in Nextcloud's capabilities, with the
//! spec's error codes for bad tokens; no auth request reaches Nextcloud.

use serde_json::{Value, json};

use crate::harness::start;
use crate::talk_common::{Nextcloud, TalkClient, config};

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

async fn hello_v2(c: &mut TalkClient, nc: &Nextcloud, token: &str) -> Value {
    c.send(
        json!({"id": "v2", "type": "hello", "hello": {"version": "2.0",
        "auth": {"url": nc.auth_url(), "params": {"token": token}}}}),
    )
    .await;
    c.recv().await
}

#[tokio::test]
async fn hello_v2_with_a_token_from_nextcloud() {
    let mut nc = Nextcloud::start().await;
    let h = start(config(&nc)).await;
    let mut c = TalkClient::connect(h.addr).await;
    let t = now();
    let token = nc.token(
        &json!({"iss": nc.url(), "sub": "alice", "iat": t, "exp": t + 300,
        "userdata": {"displayname": "Alice"}}),
    );
    let reply = hello_v2(&mut c, &nc, &token).await;
    assert_eq!(reply["type"], "hello", "{reply}");
    assert_eq!(reply["id"], "v2");
    assert_eq!(reply["hello"]["userid"], "alice");
    assert!(
        reply["hello"]["sessionid"]
            .as_str()
            .is_some_and(|s| s.len() >= 32)
    );
    let features = reply["hello"]["server"]["features"]
        .as_array()
        .expect("features");
    assert!(features.contains(&json!("hello-v2")), "{features:?}");

    // A guest token (no sub) on a second connection: the key is cached now.
    let mut g = TalkClient::connect(h.addr).await;
    let token = nc.token(&json!({"iat": t, "exp": t + 300}));
    let reply = hello_v2(&mut g, &nc, &token).await;
    assert_eq!(reply["type"], "hello", "{reply}");
    assert_eq!(reply["hello"]["userid"], "");

    // The session works like a v1 one: joining a room asks Nextcloud.
    let joined = c.join("room-1", "nc-session-1").await;
    assert_eq!(joined["type"], "room", "{joined}");
    let first = nc.request().await;
    assert_eq!(
        first["type"], "room",
        "no auth request for hello v2: {first}"
    );
    assert_eq!(first["room"]["userid"], "alice");
    assert_eq!(nc.rejected(), 0);
    h.shutdown().await;
}

#[tokio::test]
async fn bad_tokens_get_the_specs_codes_and_the_connection_may_retry() {
    let nc = Nextcloud::start().await;
    let other = Nextcloud::start().await;
    let h = start(config(&nc)).await;
    let mut c = TalkClient::connect(h.addr).await;
    let t = now();
    let cases = [
        (
            nc.token(&json!({"sub": "a", "iat": t - 900, "exp": t - 61})),
            "token_expired",
            "The token is expired.",
        ),
        (
            nc.token(&json!({"sub": "a", "iat": t + 300, "exp": t + 900})),
            "token_not_valid_yet",
            "The token is not valid yet.",
        ),
        (
            other.token(&json!({"sub": "a", "iat": t, "exp": t + 300})),
            "invalid_token",
            "The passed token is invalid.",
        ),
        (
            nc.token(&json!({"sub": "a", "exp": t + 300})),
            "invalid_token",
            "The passed token is invalid.",
        ),
        (
            "not.a.token".to_owned(),
            "invalid_token",
            "The passed token is invalid.",
        ),
    ];
    for (token, code, message) in &cases {
        let reply = hello_v2(&mut c, &nc, token).await;
        assert_eq!(reply["type"], "error", "{reply}");
        assert_eq!(reply["id"], "v2");
        assert_eq!(
            (
                reply["error"]["code"].as_str(),
                reply["error"]["message"].as_str()
            ),
            (Some(*code), Some(*message))
        );
    }
    // Within the leeway, and then a good token on the same connection.
    let reply = hello_v2(
        &mut c,
        &nc,
        &nc.token(&json!({"sub": "a", "iat": t + 50, "exp": t - 50})),
    )
    .await;
    assert_eq!(
        reply["type"], "hello",
        "60 s leeway on iat and exp: {reply}"
    );
    h.shutdown().await;
}
