//! The dashboard's sign-in: sessions in cookies, CSRF, roles, invitations,
//! tenant isolation of users. The page itself is in `dashboard_page.rs`.

use llmops_tests::{Backend, TestApp, header, on_both_backends, problem, s};
use reqwest::Method;
use serde_json::{Value, json};

on_both_backends!(
    sessions_need_their_csrf_token_and_end_on_sign_out,
    roles_and_invitations,
    another_tenants_users_are_not_found
);

pub(crate) const PASSWORD: &str = "correct horse battery staple";

/// A signed-in browser: its cookie header and the session's CSRF token.
struct Browser {
    cookie: String,
    csrf: String,
    session: Value,
}

fn cookie_of(res: &reqwest::Response) -> String {
    let set = header(res, "set-cookie");
    set.split(';').next().unwrap_or_default().to_string()
}

async fn sign_in(app: &TestApp, email: &str, password: &str) -> reqwest::Response {
    app.client
        .post(app.url("/v1/auth/sessions"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap()
}

async fn browser(app: &TestApp, email: &str) -> Browser {
    let res = sign_in(app, email, PASSWORD).await;
    assert_eq!(res.status(), 201);
    let cookie = cookie_of(&res);
    let session: Value = res.json().await.unwrap();
    Browser {
        cookie,
        csrf: s(&session["csrf_token"]),
        session,
    }
}

impl Browser {
    /// A request with the cookie; `csrf` adds the session's token.
    fn req(
        &self,
        app: &TestApp,
        method: Method,
        path: &str,
        csrf: bool,
    ) -> reqwest::RequestBuilder {
        let mut r = app
            .client
            .request(method, app.url(path))
            .header("cookie", &self.cookie);
        if csrf {
            r = r.header("x-csrf-token", &self.csrf);
        }
        r
    }

    async fn get(&self, app: &TestApp, path: &str) -> reqwest::Response {
        self.req(app, Method::GET, path, false)
            .send()
            .await
            .unwrap()
    }

    async fn send(
        &self,
        app: &TestApp,
        method: Method,
        path: &str,
        body: &Value,
    ) -> reqwest::Response {
        self.req(app, method, path, true)
            .json(body)
            .send()
            .await
            .unwrap()
    }
}

async fn sessions_need_their_csrf_token_and_end_on_sign_out(backend: Backend) {
    let app = TestApp::spawn(backend).await.unwrap();
    let t = app.create_tenant("acme").unwrap();
    let res = sign_in(&app, "Admin@Acme.test", PASSWORD).await;
    assert_eq!(res.status(), 201);
    let set = header(&res, "set-cookie");
    for part in [
        "llmops_session=",
        "HttpOnly",
        "SameSite=Strict",
        "Path=/",
        "Max-Age=43200",
    ] {
        assert!(set.contains(part), "{set}");
    }
    // Plain HTTP: a Secure cookie would never come back.
    assert!(!set.contains("Secure"), "{set}");
    assert_eq!(header(&res, "cache-control"), "no-store");
    let cookie = cookie_of(&res);
    let session: Value = res.json().await.unwrap();
    assert_eq!(session["user"]["role"], "admin");
    assert_eq!(session["tenant"]["id"], t["tenant_id"]);
    assert_eq!(session["tenant"]["name"], "acme");
    assert_eq!(s(&session["csrf_token"]).len(), 43);
    // The secret is only in the cookie, never in the body.
    assert!(
        !session
            .to_string()
            .contains(cookie.trim_start_matches("llmops_session="))
    );
    let b = Browser {
        cookie,
        csrf: s(&session["csrf_token"]),
        session,
    };

    // Reads need the cookie only; the session is readable back with its token.
    let me = b.get(&app, "/v1/tenant").await;
    assert_eq!(me.status(), 200);
    let again: Value = b.get(&app, "/v1/auth/session").await.json().await.unwrap();
    assert_eq!(again["csrf_token"], b.session["csrf_token"]);

    // A change without the token, with another token, from another origin,
    // or as a cross-site form post is refused, and nothing is created.
    let key = json!({"name": "dash", "scopes": ["inference"]});
    let res = b
        .req(&app, Method::POST, "/v1/api_keys", false)
        .json(&key)
        .send()
        .await
        .unwrap();
    problem(res, 403, "csrf_token_invalid").await.unwrap();
    let res = b
        .req(&app, Method::POST, "/v1/api_keys", false)
        .header("x-csrf-token", "A".repeat(43))
        .json(&key)
        .send()
        .await
        .unwrap();
    problem(res, 403, "csrf_token_invalid").await.unwrap();
    let res = b
        .req(&app, Method::POST, "/v1/api_keys", true)
        .header("origin", "http://evil.test")
        .json(&key)
        .send()
        .await
        .unwrap();
    problem(res, 403, "csrf_token_invalid").await.unwrap();
    let res = b
        .req(&app, Method::POST, "/v1/api_keys", true)
        .header("sec-fetch-site", "cross-site")
        .json(&key)
        .send()
        .await
        .unwrap();
    problem(res, 403, "csrf_token_invalid").await.unwrap();
    let res = b
        .req(&app, Method::DELETE, "/v1/auth/session", false)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("a=b")
        .send()
        .await
        .unwrap();
    problem(res, 403, "csrf_token_invalid").await.unwrap();
    let keys: Value = b.get(&app, "/v1/api_keys").await.json().await.unwrap();
    assert_eq!(keys["data"].as_array().map(Vec::len), Some(1), "{keys}");

    // With the token (and this origin) it works.
    let origin = app.url("");
    let res = b
        .req(&app, Method::POST, "/v1/api_keys", true)
        .header("origin", origin.trim_end_matches('/'))
        .json(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.unwrap();
    assert_eq!(created["created_by"], b.session["user"]["id"]);

    // A bearer credential wins over the cookie and needs no CSRF token.
    let api_key = s(&t["api_key"]);
    let res = app
        .client
        .post(app.url("/v1/api_keys"))
        .bearer_auth(&api_key)
        .header("cookie", "llmops_session=garbage")
        .json(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    // A bearer call has no session to read.
    problem(
        app.get("/v1/auth/session", &api_key).await.unwrap(),
        404,
        "not_found",
    )
    .await
    .unwrap();

    // Wrong passwords and unknown users look the same; bad input is 422.
    let a = problem(
        sign_in(&app, "admin@acme.test", "wrong password!!").await,
        401,
        "unauthenticated",
    )
    .await
    .unwrap();
    let c = problem(
        sign_in(&app, "nobody@acme.test", "wrong password!!").await,
        401,
        "unauthenticated",
    )
    .await
    .unwrap();
    assert_eq!(a["detail"], c["detail"]);
    problem(
        sign_in(&app, "not-an-email", "x").await,
        422,
        "validation_error",
    )
    .await
    .unwrap();
    let res = app
        .client
        .post(app.url("/v1/auth/sessions"))
        .header("origin", "http://evil.test")
        .json(&json!({"email": "admin@acme.test", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    problem(res, 403, "csrf_token_invalid").await.unwrap();

    // A forged or garbage cookie is a 401, like a bad key.
    for forged in [
        "llmops_session=",
        "llmops_session=x",
        &format!("llmops_session={}", "a".repeat(43)),
    ] {
        let res = app
            .client
            .get(app.url("/v1/tenant"))
            .header("cookie", forged)
            .send()
            .await
            .unwrap();
        problem(res, 401, "unauthenticated").await.unwrap();
    }

    // Two sessions; signing out ends one of them only.
    let other = browser(&app, "admin@acme.test").await;
    let res = b
        .send(&app, Method::DELETE, "/v1/auth/session", &json!({}))
        .await;
    assert_eq!(res.status(), 204);
    let cleared = header(&res, "set-cookie");
    assert!(
        cleared.contains("Max-Age=0") && cleared.contains("llmops_session=;"),
        "{cleared}"
    );
    problem(b.get(&app, "/v1/tenant").await, 401, "unauthenticated")
        .await
        .unwrap();
    assert_eq!(other.get(&app, "/v1/tenant").await.status(), 200);

    // Over HTTPS (as a TLS proxy in front says) the cookie is Secure and
    // named __Host-…, and the plain name is not read there.
    let res = app
        .client
        .post(app.url("/v1/auth/sessions"))
        .header("x-forwarded-proto", "https")
        .json(&json!({"email": "admin@acme.test", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let set = header(&res, "set-cookie");
    assert!(
        set.starts_with("__Host-llmops_session=") && set.contains("; Secure"),
        "{set}"
    );
    let secret = cookie_of(&res).replace("__Host-llmops_session=", "");
    let https_get = |cookie: String| {
        app.client
            .get(app.url("/v1/tenant"))
            .header("x-forwarded-proto", "https")
            .header("cookie", cookie)
            .send()
    };
    assert_eq!(
        https_get(format!("__Host-llmops_session={secret}"))
            .await
            .unwrap()
            .status(),
        200
    );
    problem(
        https_get(format!("llmops_session={secret}")).await.unwrap(),
        401,
        "unauthenticated",
    )
    .await
    .unwrap();

    // An invitation cannot be accepted while the tenant is suspended; it
    // stays pending for when the tenant is back.
    let pending_invite = invite(&other, &app, "later@acme.test", "member").await;

    // A suspended tenant's sessions stop working.
    let res = app
        .admin_post(
            &format!("/admin/v1/tenants/{}/suspend", s(&t["tenant_id"])),
            &json!({"reason": "test"}),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    llmops_tests::eventually(std::time::Duration::from_secs(10), || async {
        Ok(other.get(&app, "/v1/tenant").await.status() == 403)
    })
    .await
    .unwrap();
    let token = s(&pending_invite["token"]);
    problem(
        accept(&app, &token, "a long enough password").await,
        403,
        "tenant_suspended",
    )
    .await
    .unwrap();
    let res = app
        .admin_post(
            &format!("/admin/v1/tenants/{}/reactivate", s(&t["tenant_id"])),
            &json!({}),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        accept(&app, &token, "a long enough password")
            .await
            .status(),
        201
    );
}

async fn invite(b: &Browser, app: &TestApp, email: &str, role: &str) -> Value {
    let res = b
        .send(
            app,
            Method::POST,
            "/v1/invitations",
            &json!({"email": email, "role": role}),
        )
        .await;
    assert_eq!(res.status(), 201);
    res.json().await.unwrap()
}

async fn accept(app: &TestApp, token: &str, password: &str) -> reqwest::Response {
    app.client
        .post(app.url("/v1/auth/invitations/accept"))
        .json(&json!({"token": token, "password": password}))
        .send()
        .await
        .unwrap()
}

async fn roles_and_invitations(backend: Backend) {
    let app = TestApp::spawn(backend).await.unwrap();
    app.create_tenant("acme").unwrap();
    let admin = browser(&app, "admin@acme.test").await;

    // An invitation: its token and link once, then only its metadata.
    let inv = invite(&admin, &app, "Member@Acme.test", "member").await;
    assert_eq!(inv["email"], "member@acme.test");
    assert_eq!(inv["role"], "member");
    let token = s(&inv["token"]);
    assert_eq!(
        s(&inv["accept_path"]),
        format!("/dashboard/#/accept?token={token}")
    );
    let pending: Value = admin
        .get(&app, "/v1/invitations")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(pending["data"][0]["id"], inv["id"]);
    assert!(!pending.to_string().contains(&token));
    // Inviting someone already in the tenant is a conflict.
    let res = admin
        .send(
            &app,
            Method::POST,
            "/v1/invitations",
            &json!({"email": "admin@acme.test", "role": "member"}),
        )
        .await;
    problem(res, 409, "conflict").await.unwrap();
    let res = admin
        .send(
            &app,
            Method::POST,
            "/v1/invitations",
            &json!({"email": "x@acme.test", "role": "owner"}),
        )
        .await;
    assert!(
        res.status() == 400 || res.status() == 422,
        "{}",
        res.status()
    );

    // A short password is refused and the invitation stays usable.
    problem(accept(&app, &token, "short").await, 422, "validation_error")
        .await
        .unwrap();
    let res = accept(&app, &token, "a long enough member password").await;
    assert_eq!(res.status(), 201);
    let member = Browser {
        cookie: cookie_of(&res),
        csrf: String::new(),
        session: res.json().await.unwrap(),
    };
    let member = Browser {
        csrf: s(&member.session["csrf_token"]),
        ..member
    };
    assert_eq!(member.session["user"]["role"], "member");
    assert!(
        !member.session["scopes"]
            .as_array()
            .unwrap()
            .contains(&json!("admin"))
    );
    // Used once: a second acceptance, or a made-up token, is the same 404.
    problem(
        accept(&app, &token, "another long password").await,
        404,
        "not_found",
    )
    .await
    .unwrap();
    problem(
        accept(&app, &"Z".repeat(43), "another long password").await,
        404,
        "not_found",
    )
    .await
    .unwrap();
    let pending: Value = admin
        .get(&app, "/v1/invitations")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        pending["data"].as_array().map(Vec::len),
        Some(0),
        "{pending}"
    );

    // A member works with resources but not with keys or users.
    assert_eq!(member.get(&app, "/v1/registry/models").await.status(), 200);
    let res = member
        .send(
            &app,
            Method::POST,
            "/v1/registry/models",
            &json!({"name": "by-member"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    problem(
        member.get(&app, "/v1/api_keys").await,
        403,
        "insufficient_scope",
    )
    .await
    .unwrap();
    problem(
        member.get(&app, "/v1/users").await,
        403,
        "insufficient_scope",
    )
    .await
    .unwrap();

    // A read-only user reads and changes nothing, whichever way it signs in.
    let inv = invite(&admin, &app, "viewer@acme.test", "read_only").await;
    let res = accept(&app, &s(&inv["token"]), "a long enough viewer password").await;
    assert_eq!(res.status(), 201);
    let cookie = cookie_of(&res);
    let session: Value = res.json().await.unwrap();
    let viewer = Browser {
        cookie,
        csrf: s(&session["csrf_token"]),
        session,
    };
    assert_eq!(viewer.get(&app, "/v1/registry/models").await.status(), 200);
    let res = viewer
        .send(
            &app,
            Method::POST,
            "/v1/registry/models",
            &json!({"name": "by-viewer"}),
        )
        .await;
    problem(res, 403, "read_only").await.unwrap();
    let jwt: Value = app
        .client
        .post(app.url("/v1/auth/login"))
        .json(&json!({"email": "viewer@acme.test", "password": "a long enough viewer password"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let jwt = s(&jwt["access_token"]);
    assert_eq!(
        app.get("/v1/registry/models", &jwt).await.unwrap().status(),
        200
    );
    let res = app
        .post(
            "/v1/registry/models",
            &jwt,
            &json!({"name": "by-viewer-jwt"}),
        )
        .await
        .unwrap();
    problem(res, 403, "read_only").await.unwrap();

    // Roles change at the next request; the last admin stays an admin.
    let users: Value = admin.get(&app, "/v1/users").await.json().await.unwrap();
    assert_eq!(users["data"].as_array().map(Vec::len), Some(3), "{users}");
    let member_id = s(&member.session["user"]["id"]);
    let admin_id = s(&admin.session["user"]["id"]);
    let res = admin
        .send(
            &app,
            Method::PATCH,
            &format!("/v1/users/{member_id}"),
            &json!({"role": "read_only"}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let res = member
        .send(
            &app,
            Method::POST,
            "/v1/registry/models",
            &json!({"name": "after-demotion"}),
        )
        .await;
    problem(res, 403, "read_only").await.unwrap();
    let res = admin
        .send(
            &app,
            Method::PATCH,
            &format!("/v1/users/{admin_id}"),
            &json!({"role": "member"}),
        )
        .await;
    problem(res, 409, "conflict").await.unwrap();
    let res = admin
        .send(
            &app,
            Method::DELETE,
            &format!("/v1/users/{admin_id}"),
            &json!({}),
        )
        .await;
    problem(res, 409, "conflict").await.unwrap();

    // A token from before a demotion loses what the role lost; a removed
    // user's tokens and pending invitations end with it.
    let member_jwt: Value = app
        .client
        .post(app.url("/v1/auth/login"))
        .json(&json!({"email": "member@acme.test", "password": "a long enough member password"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let member_jwt = s(&member_jwt["access_token"]);
    let res = app
        .post(
            "/v1/registry/models",
            &member_jwt,
            &json!({"name": "jwt-after-demotion"}),
        )
        .await
        .unwrap();
    problem(res, 403, "read_only").await.unwrap();
    let res = admin
        .send(
            &app,
            Method::PATCH,
            &format!("/v1/users/{member_id}"),
            &json!({"role": "admin"}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let member_admin = Browser {
        cookie: member.cookie.clone(),
        csrf: member.csrf.clone(),
        session: member.session.clone(),
    };
    let planted = invite(&member_admin, &app, "planted@acme.test", "admin").await;
    let admin_jwt: Value = app
        .client
        .post(app.url("/v1/auth/login"))
        .json(&json!({"email": "member@acme.test", "password": "a long enough member password"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let admin_jwt = s(&admin_jwt["access_token"]);
    assert_eq!(
        app.get("/v1/users", &admin_jwt).await.unwrap().status(),
        200
    );

    // A removed user's sessions end at once.
    let res = admin
        .send(
            &app,
            Method::DELETE,
            &format!("/v1/users/{member_id}"),
            &json!({}),
        )
        .await;
    assert_eq!(res.status(), 204);
    problem(member.get(&app, "/v1/tenant").await, 401, "unauthenticated")
        .await
        .unwrap();
    problem(
        app.get("/v1/tenant", &admin_jwt).await.unwrap(),
        401,
        "unauthenticated",
    )
    .await
    .unwrap();
    problem(
        accept(
            &app,
            &s(&planted["token"]),
            "a long enough planted password",
        )
        .await,
        404,
        "not_found",
    )
    .await
    .unwrap();

    // A revoked invitation cannot be accepted.
    let inv = invite(&admin, &app, "late@acme.test", "member").await;
    let res = admin
        .send(
            &app,
            Method::DELETE,
            &format!("/v1/invitations/{}", s(&inv["id"])),
            &json!({}),
        )
        .await;
    assert_eq!(res.status(), 204);
    problem(
        accept(&app, &s(&inv["token"]), "a long enough late password").await,
        404,
        "not_found",
    )
    .await
    .unwrap();

    // A read-only user may still sign out.
    let res = viewer
        .send(&app, Method::DELETE, "/v1/auth/session", &json!({}))
        .await;
    assert_eq!(res.status(), 204);
}

async fn another_tenants_users_are_not_found(backend: Backend) {
    let app = TestApp::spawn(backend).await.unwrap();
    app.create_tenant("acme").unwrap();
    app.create_tenant("globex").unwrap();
    let a = browser(&app, "admin@acme.test").await;
    let b = browser(&app, "admin@globex.test").await;
    let inv = invite(&a, &app, "someone@acme.test", "member").await;
    let a_user = s(&a.session["user"]["id"]);
    let a_inv = s(&inv["id"]);

    // B sees none of A's users or invitations, and A's ids are 404 to B.
    let users: Value = b.get(&app, "/v1/users").await.json().await.unwrap();
    assert!(!users.to_string().contains(&a_user), "{users}");
    let invs: Value = b.get(&app, "/v1/invitations").await.json().await.unwrap();
    assert!(!invs.to_string().contains(&a_inv), "{invs}");
    problem(
        b.get(&app, &format!("/v1/users/{a_user}")).await,
        404,
        "not_found",
    )
    .await
    .unwrap();
    let res = b
        .send(
            &app,
            Method::PATCH,
            &format!("/v1/users/{a_user}"),
            &json!({"role": "read_only"}),
        )
        .await;
    problem(res, 404, "not_found").await.unwrap();
    let res = b
        .send(
            &app,
            Method::DELETE,
            &format!("/v1/users/{a_user}"),
            &json!({}),
        )
        .await;
    problem(res, 404, "not_found").await.unwrap();
    let res = b
        .send(
            &app,
            Method::DELETE,
            &format!("/v1/invitations/{a_inv}"),
            &json!({}),
        )
        .await;
    problem(res, 404, "not_found").await.unwrap();
    // A's user and invitation are untouched; A's CSRF token is no good on
    // B's session.
    let me: Value = a
        .get(&app, &format!("/v1/users/{a_user}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["role"], "admin");
    let res = b
        .req(&app, Method::POST, "/v1/invitations", false)
        .header("x-csrf-token", &a.csrf)
        .json(&json!({"email": "x@globex.test", "role": "member"}))
        .send()
        .await
        .unwrap();
    problem(res, 403, "csrf_token_invalid").await.unwrap();
    // Accepting A's invitation signs into A's tenant, whoever holds it.
    let res = accept(&app, &s(&inv["token"]), "someone's long password").await;
    assert_eq!(res.status(), 201);
    let session: Value = res.json().await.unwrap();
    assert_eq!(session["tenant"]["name"], "acme");
}
