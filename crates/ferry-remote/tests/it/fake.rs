//! A misbehaving store for the tests: an in-memory store that counts the
//! requests it is sent, can answer the next N uploads or downloads with a
//! server error, and can act as a bucket that does not exist.

use futures_util::stream::BoxStream;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

#[derive(Debug, Default)]
pub struct Fake {
    pub inner: InMemory,
    pub requests: AtomicUsize,
    /// Multipart uploads begun.
    pub multiparts: AtomicUsize,
    /// The next this many uploads fail as a 500 would.
    pub fail_puts: AtomicUsize,
    /// The next this many downloads fail as a 500 would.
    pub fail_gets: AtomicUsize,
    /// Every request fails as S3 answers for a bucket that does not exist.
    pub no_bucket: AtomicBool,
}

fn server_error() -> object_store::Error {
    object_store::Error::Generic {
        store: "fake",
        source: "500 Internal Server Error".into(),
    }
}

fn take(counter: &AtomicUsize) -> bool {
    counter
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

impl Fake {
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
    fn hit(&self) -> Result<()> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        if self.no_bucket.load(Ordering::SeqCst) {
            return Err(object_store::Error::NotFound {
                path: String::new(),
                source: "404 Not Found: <Error><Code>NoSuchBucket</Code>\
                         <Message>The specified bucket does not exist</Message></Error>"
                    .into(),
            });
        }
        Ok(())
    }
    fn hit_put(&self) -> Result<()> {
        self.hit()?;
        if take(&self.fail_puts) {
            return Err(server_error());
        }
        Ok(())
    }
}

impl std::fmt::Display for Fake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Fake")
    }
}

#[async_trait::async_trait]
impl ObjectStore for Fake {
    async fn put_opts(&self, p: &Path, payload: PutPayload, o: PutOptions) -> Result<PutResult> {
        self.hit_put()?;
        self.inner.put_opts(p, payload, o).await
    }
    async fn put_multipart_opts(
        &self,
        p: &Path,
        o: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.hit_put()?;
        self.multiparts.fetch_add(1, Ordering::SeqCst);
        self.inner.put_multipart_opts(p, o).await
    }
    async fn get_opts(&self, p: &Path, o: GetOptions) -> Result<GetResult> {
        self.hit()?;
        if take(&self.fail_gets) {
            return Err(server_error());
        }
        self.inner.get_opts(p, o).await
    }
    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        if let Err(e) = self.hit() {
            return Box::pin(futures_util::stream::once(async { Err(e) }));
        }
        self.inner.delete_stream(locations)
    }
    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        if let Err(e) = self.hit() {
            return Box::pin(futures_util::stream::once(async { Err(e) }));
        }
        self.inner.list(prefix)
    }
    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.hit()?;
        self.inner.list_with_delimiter(prefix).await
    }
    async fn copy_opts(&self, from: &Path, to: &Path, o: CopyOptions) -> Result<()> {
        self.hit()?;
        self.inner.copy_opts(from, to, o).await
    }
}
