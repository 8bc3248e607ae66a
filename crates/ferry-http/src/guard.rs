//! One guard in front of every route of a server, off or on at run time:
//! while off (the store has no users) a request goes straight through, with
//! no allocation and no lookup; while on, a request the guard can pass at
//! once (a decision it remembers) goes the same way, and any other waits
//! for the server's [`Guard`] to decide, answer or pass it on. Both servers' authorisation
//! points are such guards (`ferry-tracking`'s gate, `ferry-gateway`'s).

use axum::extract::Request;
use axum::response::Response;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// A boxed answer.
pub type Answer = Pin<Box<dyn Future<Output = Response> + Send + 'static>>;

/// What a server decides before its routes, while on.
pub trait Guard: Send + Sync + 'static {
    /// Whether requests go through [`Guard::guard`] now.
    fn is_on(&self) -> bool;
    /// Whether `req` may pass at once, decided without waiting (a decision
    /// this thread made before); then it goes through as while off. A guard
    /// may also leave its decision to the route, by an extension the
    /// route's extractor must take and act on before the route does
    /// anything (the tracking server's JSON routes, whose ids are in the
    /// body the extractor reads anyway).
    fn passes_at_once(self: &Arc<Self>, _req: &mut Request) -> bool {
        false
    }
    /// Decides on `req`: answers it, or gives it to `next` (one box: the
    /// routes' own future lives inside the guard's).
    fn guard<S: Routes>(self: Arc<Self>, req: Request, next: Next<S>) -> Answer;
}

/// The routes a guard stands in front of (a router's service).
pub trait Routes:
    tower::Service<Request, Response = Response, Error = Infallible, Future: Send> + Send + 'static
{
}

impl<S> Routes for S where
    S: tower::Service<Request, Response = Response, Error = Infallible, Future: Send>
        + Send
        + 'static
{
}

/// The routes behind a guard, for one request (polled ready).
pub struct Next<S>(S);

impl<S: Routes> Next<S> {
    /// Passes the request on to the routes.
    pub async fn run(mut self, req: Request) -> Response {
        match self.0.call(req).await {
            Ok(r) => r,
            Err(never) => match never {},
        }
    }
}

/// The [`tower::Layer`] that puts a [`Guard`] in front of a router.
pub struct GuardLayer<G>(pub Arc<G>);

impl<G> Clone for GuardLayer<G> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<G: Guard, S> tower::Layer<S> for GuardLayer<G> {
    type Service = GuardService<G, S>;

    fn layer(&self, inner: S) -> Self::Service {
        GuardService {
            guard: self.0.clone(),
            inner,
        }
    }
}

pub struct GuardService<G, S> {
    guard: Arc<G>,
    inner: S,
}

impl<G, S: Clone> Clone for GuardService<G, S> {
    fn clone(&self) -> Self {
        Self {
            guard: self.guard.clone(),
            inner: self.inner.clone(),
        }
    }
}

/// The off path's future (the routes' own), or the guard's.
pub type Either<F> = futures_util::future::Either<F, Guarded>;

/// The guard's answer as the service's future.
pub type Guarded = futures_util::future::Map<Answer, fn(Response) -> Result<Response, Infallible>>;

impl<G, S> tower::Service<Request> for GuardService<G, S>
where
    G: Guard,
    S: tower::Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<S::Future>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        use futures_util::FutureExt as _;
        if !self.guard.is_on() || self.guard.passes_at_once(&mut req) {
            return Either::Left(self.inner.call(req));
        }
        // The service that was polled ready goes with the request.
        let clone = self.inner.clone();
        let next = Next(std::mem::replace(&mut self.inner, clone));
        let answered: fn(Response) -> Result<Response, Infallible> = Ok;
        Either::Right(self.guard.clone().guard(req, next).map(answered))
    }
}
