//! Authentication: the scheme a registry asks for (its `WWW-Authenticate` challenges) and
//! Bearer tokens per scope, fetched from its token server and cached.

use super::*;

impl Client {
    /// The `Authorization` value for these scopes, fetching a token if needed.
    pub(crate) async fn authorization(
        &self,
        scopes: &[String],
        fresh: bool,
    ) -> Result<Option<String>> {
        let mut st = self.state.lock().await;
        match st.scheme.clone() {
            Scheme::Anonymous => Ok(None),
            Scheme::Basic => Ok(self.creds.as_ref().map(|c| c.basic_header())),
            Scheme::Bearer { realm, service } => {
                let key = scopes.join(" ");
                if !fresh {
                    if let Some(t) = st.tokens.get(&key) {
                        return Ok(Some(format!("Bearer {t}")));
                    }
                }
                let tok = self.fetch_token(&realm, service.as_deref(), scopes).await?;
                st.tokens.insert(key, tok.clone());
                Ok(Some(format!("Bearer {tok}")))
            }
        }
    }

    pub(crate) async fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scopes: &[String],
    ) -> Result<String> {
        let mut url = Url::parse(realm).map_err(|e| {
            RegistryError::Other(format!(
                "registry sent an invalid token realm {realm:?}: {e}"
            ))
        })?;
        let resp = match &self.creds {
            Some(c) if c.username == "<token>" => {
                let mut form: Vec<(&str, &str)> = vec![
                    ("grant_type", "refresh_token"),
                    ("refresh_token", &c.password),
                    ("client_id", "berth"),
                ];
                if let Some(s) = service {
                    form.push(("service", s));
                }
                let scope = scopes.join(" ");
                if !scope.is_empty() {
                    form.push(("scope", &scope));
                }
                self.http.post(url).form(&form).send().await
            }
            creds => {
                {
                    let mut q = url.query_pairs_mut();
                    if let Some(s) = service {
                        q.append_pair("service", s);
                    }
                    for s in scopes {
                        q.append_pair("scope", s);
                    }
                    if let Some(c) = creds {
                        q.append_pair("account", &c.username);
                    }
                }
                let mut rb = self.http.get(url);
                if let Some(c) = creds {
                    rb = rb.header(AUTHORIZATION, c.basic_header());
                }
                rb.send().await
            }
        };
        let resp = resp.map_err(|e| RegistryError::Connect {
            registry: realm.to_string(),
            detail: chain_text(&e),
        })?;
        let status = resp.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            let e = error_from_response(resp).await;
            return Err(match e {
                RegistryError::Unauthorized { .. } => e,
                other => RegistryError::Unauthorized {
                    message: other.to_string(),
                },
            });
        }
        if !status.is_success() {
            return Err(error_from_response(resp).await);
        }
        #[derive(Deserialize)]
        struct Tok {
            token: Option<String>,
            access_token: Option<String>,
        }
        let body = read_limited(resp, 1 << 20, "token response", realm).await?;
        let t: Tok = serde_json::from_slice(&body).map_err(|e| {
            RegistryError::Other(format!("token server {realm} sent invalid JSON: {e}"))
        })?;
        t.token
            .filter(|s| !s.is_empty())
            .or(t.access_token.filter(|s| !s.is_empty()))
            .ok_or_else(|| RegistryError::Other(format!("token server {realm} sent no token")))
    }
}

pub(crate) fn challenges_of(h: &HeaderMap) -> Vec<crate::auth::Challenge> {
    h.get_all(WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(parse_www_authenticate)
        .collect()
}

pub(crate) fn pick_scheme(ch: &[crate::auth::Challenge]) -> Scheme {
    if let Some(c) = ch.iter().find(|c| c.scheme == "bearer") {
        if let Some(realm) = c.param("realm") {
            return Scheme::Bearer {
                realm: realm.to_string(),
                service: c.param("service").map(String::from),
            };
        }
    }
    if ch.iter().any(|c| c.scheme == "basic") || ch.is_empty() {
        return Scheme::Basic;
    }
    Scheme::Anonymous
}

pub(crate) async fn scheme_from_ping(resp: Response, registry: &str) -> Result<Scheme> {
    let status = resp.status();
    if status.is_success() {
        return Ok(Scheme::Anonymous);
    }
    if status == StatusCode::UNAUTHORIZED {
        return Ok(pick_scheme(&challenges_of(resp.headers())));
    }
    let e = error_from_response(resp).await;
    Err(RegistryError::Other(format!(
        "{registry} does not look like a registry: GET /v2/ answered {status}: {e}"
    )))
}
