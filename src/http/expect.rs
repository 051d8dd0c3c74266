//! `Expect: 100-continue` answered only once the gate would admit the request: the probe that
//! asks the gate first, and the markers that carry its answer.
//!
//! actix-http writes `100 Continue` as soon as its expect service returns the request, before
//! the application runs. Clearance's expect service therefore sends a copy of the request head
//! (no body) through the whole application first, marked [`ExpectProbe`]:
//!
//! * a request for one of Clearance's own endpoints (a registered route) is answered
//!   [`continue_allowed`] without running its handler: those endpoints authenticate what they
//!   read themselves, and none runs twice;
//! * a request for the gate is decided by the gate as usual, recording only a refusal
//!   ([`super::gate::Recording::RefusalsOnly`]); admitted, it answers [`continue_allowed`]
//!   without forwarding anything, refused, its refusal (sign-in, block page, 400, 429 ...) is
//!   the final answer and no `100 Continue` is ever written;
//! * anything else (a 404 of Clearance's own) is the final answer too.
//!
//! Only when the probe's answer is [`continue_allowed`] does the expect service hand the real
//! request back, marked [`ContinueSent`]; actix-http then writes `100 Continue` and runs the
//! application on it, which decides again (state may have changed meanwhile) and records as
//! every request does. So a refusal is recorded once, by the probe or by the request, never by
//! both, and the rate limit is charged once, by the probe.

use actix_http::{Request, Response, body::BoxBody};
use actix_service::{Service, ServiceFactory, fn_factory, fn_service};
use actix_web::dev::{AppConfig, ServiceResponse};
use actix_web::{HttpMessage as _, HttpResponse};
use std::rc::Rc;

/// Marks the copy of a request head sent through the application to ask whether the request
/// may have its body (request extension; only the expect service inserts it).
#[derive(Clone, Copy, Debug)]
pub struct ExpectProbe;

/// Marks the probe's answer "send the body" (response extension; never sent to a client).
#[derive(Clone, Copy, Debug)]
pub struct ContinueAllowed;

/// Marks a request whose `100 Continue` was sent after its probe was admitted (request
/// extension): its head was already checked against the limits, and charged to the rate.
#[derive(Clone, Copy, Debug)]
pub struct ContinueSent;

/// Whether `req` is a probe rather than a request with a body to come.
pub fn is_probe(req: &impl actix_web::HttpMessage) -> bool {
    req.extensions().contains::<ExpectProbe>()
}

/// The probe's answer for a request that may send its body.
pub fn continue_allowed() -> HttpResponse {
    let mut res = HttpResponse::NoContent().finish();
    res.extensions_mut().insert(ContinueAllowed);
    res
}

/// The final answer to a request whose expectation was not met: written instead of
/// `100 Continue`. actix-http closes the connection after it (the body is unread), so a body
/// the client sends anyway is never read as a request of its own.
#[derive(Debug)]
pub struct Refusal(Response<BoxBody>);

impl From<Refusal> for Response<BoxBody> {
    fn from(refusal: Refusal) -> Self {
        refusal.0
    }
}

/// The expect service of one listener: a second instance of the listener's application, asked
/// about each request with `Expect: 100-continue` before its body is invited.
pub fn service<F, S, B>(
    app: F,
) -> impl ServiceFactory<Request, Config = (), Response = Request, Error = Refusal, InitError = ()>
where
    F: Fn() -> S + Clone + 'static,
    S: ServiceFactory<
            Request,
            Config = AppConfig,
            Response = ServiceResponse<B>,
            Error = actix_web::Error,
            InitError = (),
        > + 'static,
    S::Service: 'static,
    B: actix_web::body::MessageBody + 'static,
{
    fn_factory(move || {
        let factory = app();
        async move {
            let app = Rc::new(factory.new_service(AppConfig::default()).await?);
            Ok(fn_service(move |req: Request| {
                let app = Rc::clone(&app);
                async move { ask(&*app, req).await }
            }))
        }
    })
}

/// Sends a bodiless copy of `req`'s head through `app` and hands `req` back only when the
/// answer is [`continue_allowed`].
async fn ask<S, B>(app: &S, req: Request) -> Result<Request, Refusal>
where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: actix_web::body::MessageBody + 'static,
{
    let mut probe = Request::new();
    *probe.head_mut() = req.head().clone();
    probe.extensions_mut().insert(ExpectProbe);
    match app.call(probe).await {
        Ok(res) if res.response().extensions().contains::<ContinueAllowed>() => {
            req.extensions_mut().insert(ContinueSent);
            Ok(req)
        }
        Ok(res) => Err(Refusal(res.into_parts().1.map_into_boxed_body().into())),
        Err(e) => Err(Refusal(e.error_response().into())),
    }
}
