//! Sessions and accounts: what needs a login, passwords and logout, `user add`,
//! what each role may do, and the lockout after repeated wrong passwords.

use super::*;

#[test]
fn health_is_open_and_everything_else_needs_a_session() {
    let n = center();
    let anon = n.server.client();
    let h = anon.get("/api/health");
    h.expect(200);
    assert_eq!(h.json["ok"], true);
    assert_eq!(h.json["role"], "center");
    for path in [
        "/api/cases",
        "/api/cases/440399-003-20250101-0001",
        "/api/catalog",
        "/api/conflicts",
        "/api/sync",
        "/api/sync/stream",
        "/api/dashboard",
        "/api/me",
        "/api/openapi.json",
    ] {
        let r = anon.get(path);
        r.expect(401);
        assert!(r.message().contains("sign in"), "{path}: {}", r.message());
        anon.with_token("not-a-token").get(path).expect(401);
        anon.with_token(&"ab".repeat(32)).get(path).expect(401);
    }
    anon.post("/api/cases", &case_body("x")).expect(401);
    anon.post("/api/cases/x/events", &json!({"kind": "accepted"}))
        .expect(401);
    anon.patch("/api/cases/x", &json!({"set": {"applicant.phone": PHONE}}))
        .expect(401);
    anon.post("/api/cases/x/resolve", &json!({"event_id": "e1"}))
        .expect(401);
    anon.post("/api/logout", &json!({})).expect(401);
    // A page without a session sends the browser to the login page.
    let page = anon.get("/cases");
    assert_eq!(page.status, 303, "{}", page.text);
    assert_eq!(page.location.as_deref(), Some("/login"));
    // Nothing was registered by any of it.
    assert_eq!(case_count(&n.api), 0);
}

#[test]
fn login_checks_the_password_and_sessions_end_at_logout() {
    let n = center();
    let anon = n.server.client();
    let wrong = anon.post(
        "/api/login",
        &json!({"name": "C007", "password": "wrong-password"}),
    );
    wrong.expect(401);
    assert!(wrong.message().contains("wrong user name or password"));
    let unknown = anon.post(
        "/api/login",
        &json!({"name": "nobody", "password": PASSWORD}),
    );
    unknown.expect(401);
    assert_eq!(
        unknown.message(),
        wrong.message(),
        "no hint which one was wrong"
    );
    let missing = anon.post("/api/login", &json!({"name": "C007"}));
    missing.expect(422);
    assert_eq!(missing.field(), "password");
    let typed = anon.post("/api/login", &json!({"name": 7, "password": PASSWORD}));
    typed.expect(422);
    assert_eq!(typed.field(), "name");
    anon.send_raw(
        "POST",
        "/api/login",
        "application/json",
        b"{\"name\": \"C007\",",
    )
    .expect(400);
    anon.send_raw("POST", "/api/login", "text/plain", b"name=C007")
        .expect(415);

    let r = anon.post("/api/login", &json!({"name": "C007", "password": PASSWORD}));
    r.expect(200);
    assert_eq!(r.json["role"], "clerk");
    let token = r.json["token"].as_str().unwrap().to_owned();
    assert_eq!(token.len(), 64);
    let cookie = r.set_cookie.clone().expect("a session cookie");
    assert!(
        cookie.starts_with(&format!("yc_session={token}"))
            && cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let me = anon.with_token(&token).get("/api/me");
    me.expect(200);
    assert_eq!(me.json["name"], "C007");
    assert_eq!(me.json["center"], "003");
    anon.with_token(&token)
        .post("/api/logout", &json!({}))
        .expect(204);
    anon.with_token(&token).get("/api/me").expect(401);

    // A new password ends the old sessions and the old password stops working.
    let again = anon.login("C007", PASSWORD);
    add_user(&n.dir, "C007", "supervisor", "another-pass-2");
    again.get("/api/me").expect(401);
    anon.post("/api/login", &json!({"name": "C007", "password": PASSWORD}))
        .expect(401);
    let sup = anon.login("C007", "another-pass-2");
    assert_eq!(sup.get("/api/me").json["role"], "supervisor");
}

#[test]
fn user_add_refuses_short_passwords_and_unknown_roles() {
    let dir = TempDir::new("web-user");
    let d = init_node(dir.path(), "center", Some("003"));
    let err = fails(&["user", "add", "--dir", &d, "--name", "C1"]);
    assert!(err.contains("standard input"), "{err}");
    let err = fails(&["user", "add", "--dir", &d, "--name", "C1", "--role", "king"]);
    assert!(err.contains("unknown role"), "{err}");
    add_user(&d, "C1", "admin", "long-enough-1");
    let users = json(&["user", "list", "--dir", &d, "--json"]);
    assert_eq!(users, json!([{"name": "C1", "role": "admin"}]));
    // The database holds a PHC string, never the password.
    let conn = rusqlite::Connection::open(dir.join("yichuang.db")).unwrap();
    let phc: String = conn
        .query_row(
            "SELECT password_phc FROM users WHERE name = 'C1'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        phc.starts_with("$argon2id$") && !phc.contains("long-enough-1"),
        "{phc}"
    );
    let listed = ok(&["user", "list", "--dir", &d]);
    assert!(listed.contains("C1\tadmin"), "{listed}");
}

/// Each role tries each gated action. Clerks register, advance and edit; supervisors
/// also reveal ID numbers and resolve conflicts; admins also read the report. A
/// refusal is a 403 JSON error that changes nothing, checked before the input is,
/// and the pages offer no button the role may not press.
#[test]
fn roles_gate_what_each_user_may_do() {
    let n = center();
    let code = first_item(&n.api)["code"].as_str().unwrap().to_owned();
    let users = [
        ("clerk", n.api.clone()),
        ("supervisor", signed_in(&n, "S001", "supervisor")),
        ("admin", signed_in(&n, "A001", "admin")),
    ];
    let today =
        yichuang_node::store::cases_fmt_time(yichuang_node::store::now_ms())[..10].to_owned();
    for (role, api) in &users {
        let me = api.get("/api/me");
        me.expect(200);
        assert_eq!(me.json["role"], *role);
        let may = |action: &str| {
            me.json["permissions"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p == action)
        };
        let (supervisor, admin) = (*role != "clerk", *role == "admin");
        assert_eq!(
            (
                may("register"),
                may("reveal"),
                may("resolve"),
                may("report")
            ),
            (true, supervisor, supervisor, admin),
            "{role}: {}",
            me.text
        );

        // Every role works cases.
        let created = api.post("/api/cases", &case_body(&code));
        created.expect(201);
        let case_no = created.json["case_no"].as_str().unwrap().to_owned();
        let path = format!("/api/cases/{case_no}");
        api.post(&format!("{path}/events"), &json!({"kind": "accepted"}))
            .expect(200);
        let edited = api.patch(&path, &json!({"set": {"applicant.address": "云溪路1号"}}));
        edited.expect(200);
        assert_eq!(edited.json["case"]["applicant"]["address"], "云溪路1号");

        // Reveal: supervisors and admins; a refused reveal records nothing.
        let reveal = api.get(&format!("{path}?reveal=true"));
        let reveals = |api: &Api| {
            api.get(&path).json["case"]["events"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| e["kind"] == "id_revealed")
                .count()
        };
        if supervisor {
            reveal.expect(200);
            assert_eq!(reveal.json["case"]["applicant"]["id_no"], ID);
            assert_eq!(reveals(api), 1, "{role}");
        } else {
            reveal.expect(403);
            assert_eq!(reveal.field(), "reveal");
            assert!(reveal.message().contains("supervisor"), "{}", reveal.text);
            assert!(!reveal.text.contains(ID));
            assert_eq!(reveals(api), 0, "a refused reveal is not recorded");
        }
        let page = api.get(&format!("/cases/{case_no}"));
        page.expect(200);
        assert_eq!(page.text.contains(r#"id="reveal""#), supervisor, "{role}");

        // Resolve: supervisors and admins; the refusal comes before the body is read.
        let conflicted = phone_conflict(&n, &created.json);
        let resolve = format!("/api/cases/{conflicted}/resolve");
        let queue = api.get("/conflicts");
        queue.expect(200);
        assert_eq!(queue.text.contains("data-resolve="), supervisor, "{role}");
        let pick = api.post(&resolve, &json!({"field": "applicant.phone", "pick": 1}));
        if supervisor {
            pick.expect(200);
            assert_eq!(pick.json["case"]["conflict_count"], 0);
        } else {
            pick.expect(403);
            assert!(pick.message().contains("supervisor"), "{}", pick.text);
            api.post(&resolve, &json!({})).expect(403);
            api.send_raw("POST", &resolve, "application/json", b"{")
                .expect(403);
            assert!(queue.text.contains("resolve-needs-supervisor"));
            assert_eq!(
                api.get(&path).json["case"]["conflict_count"],
                1,
                "a refused resolve changes nothing"
            );
            // A supervisor clears it, so the next role starts from a clean queue.
            users[1]
                .1
                .post(&resolve, &json!({"field": "applicant.phone", "pick": 1}))
                .expect(200);
        }

        // The report: admins only; the refusal comes before the parameters are read.
        let report = api.get(&format!("/api/report?from={today}&to={today}"));
        if admin {
            report.expect(200);
            assert!(report.json["rows"].is_array(), "{}", report.text);
        } else {
            report.expect(403);
            assert!(report.message().contains("admin"), "{}", report.text);
            api.get("/api/report?from=never").expect(403);
        }
    }
    assert_eq!(case_count(&n.api), 3);
}

/// Five wrong passwords for a name lock it for the window, even against the right
/// password, with a 429 that says when to retry; a success clears the count; a name
/// without an account locks the same way, with the same answer. The throttle's clock
/// is the test's, so the window passes without waiting.
#[test]
fn repeated_wrong_passwords_lock_the_name_until_the_window_passes() {
    let dir = TempDir::new("web-lock");
    let d = init_node(dir.path(), "center", Some("003"));
    add_user(&d, "C007", "clerk", PASSWORD);
    add_user(&d, "C008", "clerk", PASSWORD);
    let now = Arc::new(AtomicI64::new(1_767_225_600_000)); // 2026-01-01 08:00 China time
    let clock = now.clone();
    let server = InProcess::start(&d, move |state| {
        state.login_guard = Arc::new(LoginGuard::new(
            LoginLimits::default(),
            Arc::new(move || clock.load(Ordering::SeqCst)),
        ));
    });
    let anon = server.client();
    let attempt = |name: &str, password: &str| {
        anon.post("/api/login", &json!({"name": name, "password": password}))
    };
    let max = LOGIN_FAILURES_MAX as usize;

    // One short of the limit, then the right password: in, and the count starts over.
    for _ in 0..max - 1 {
        attempt("C007", "wrong-password").expect(401);
    }
    attempt("C007", PASSWORD).expect(200);
    for _ in 0..max {
        attempt("C007", "wrong-password").expect(401);
    }
    // Now locked, the right password included.
    let locked = attempt("C007", PASSWORD);
    locked.expect(429);
    assert_eq!(locked.field(), "name");
    let wait_s = (LOGIN_WINDOW_MS / 1000).to_string();
    assert!(
        locked
            .message()
            .contains("try again after 2026-01-01 08:15")
            && locked.message().contains(&format!("in {wait_s} s")),
        "{}",
        locked.text
    );
    assert_eq!(locked.retry_after.as_deref(), Some(wait_s.as_str()));
    assert!(locked.set_cookie.is_none(), "no session while locked");
    // The login page refuses too.
    let page = anon.send_raw(
        "POST",
        "/login",
        "application/x-www-form-urlencoded",
        format!("name=C007&password={PASSWORD}").as_bytes(),
    );
    assert_eq!(page.status, 429, "{}", page.text);
    assert!(page.text.contains("已暂时锁定") && page.set_cookie.is_none());
    // Other names are not affected.
    attempt("C008", PASSWORD).expect(200);

    // A name with no account locks alike and gets the same answer, so the refusal
    // tells nothing about which names exist.
    for _ in 0..max {
        attempt("nobody", "wrong-password").expect(401);
    }
    let unknown = attempt("nobody", PASSWORD);
    unknown.expect(429);
    assert_eq!(unknown.text, locked.text);
    assert_eq!(unknown.retry_after, locked.retry_after);

    // A burst of guesses at once gets no more tries than the limit (plus the ones
    // already checking when the lock fell); the rest are refused.
    let burst: Vec<u16> = std::thread::scope(|scope| {
        let tries: Vec<_> = (0..4 * max)
            .map(|_| scope.spawn(|| attempt("burst", "wrong-password").status))
            .collect();
        tries.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let refused = burst.iter().filter(|s| **s == 429).count();
    let checked = burst.iter().filter(|s| **s == 401).count();
    assert_eq!(refused + checked, burst.len(), "{burst:?}");
    assert!(
        checked < max + LOGINS_IN_FLIGHT_MAX,
        "{checked} guesses were checked: {burst:?}"
    );

    // Until the window passes: one millisecond before, still refused; then in.
    now.fetch_add(LOGIN_WINDOW_MS - 1, Ordering::SeqCst);
    let last = attempt("C007", PASSWORD);
    last.expect(429);
    assert_eq!(last.retry_after.as_deref(), Some("1"));
    now.fetch_add(1, Ordering::SeqCst);
    let me = anon.login("C007", PASSWORD).get("/api/me");
    me.expect(200);
    assert_eq!(me.json["name"], "C007");
}
