//! Bounded line decoding of a watch body.
//!
//! A watch response is a stream of JSON documents separated by newlines. kube-client decodes it
//! with an unbounded line codec: a server (or a man in the middle) sending one endless line
//! makes it buffer without limit. [`LineDecoder`] refuses a line as soon as it passes its
//! limit, newline or not, so the bytes it holds never exceed the limit plus one chunk.
//! [`BodyLines`] drives it from any [`http_body::Body`], one line per call, and is cancel-safe:
//! partial data lives in the struct, not in the future, so a caller may wrap each
//! [`BodyLines::next_line`] in `tokio::time::timeout` (a per-event idle deadline that a slow
//! drip of bytes cannot keep alive).

use std::error::Error as StdError;

use bytes::{Bytes, BytesMut};
use http_body::Body;
use http_body_util::BodyExt;
use watchpool_api::ErrorReason;

/// A boxed error from the body, as produced by hyper or kube.
pub type BoxError = Box<dyn StdError + Send + Sync>;

/// Why a line could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// A line (without its newline) is longer than the limit.
    #[error("line longer than {limit} bytes")]
    LineTooLong {
        /// The limit in force, in bytes.
        limit: usize,
    },
}

/// Splits pushed chunks into newline-terminated lines of at most `max_line` bytes.
///
/// Lines are returned without their `\n`; lines that are empty or only whitespace are skipped.
/// Once a line is refused the decoder is poisoned: it drops what it holds, ignores further
/// chunks and keeps returning the error (the connection is to be closed).
#[derive(Debug)]
pub struct LineDecoder {
    max_line: usize,
    buf: BytesMut,
    /// `buf[..scanned]` is known to hold no newline.
    scanned: usize,
    poisoned: bool,
}

impl LineDecoder {
    /// A decoder refusing lines longer than `max_line` bytes (newline excluded).
    pub fn new(max_line: usize) -> Self {
        Self {
            max_line,
            buf: BytesMut::new(),
            scanned: 0,
            poisoned: false,
        }
    }

    /// The limit in force, in bytes.
    pub fn max_line(&self) -> usize {
        self.max_line
    }

    /// Bytes currently buffered (complete lines not yet taken plus the partial last line).
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// True when bytes of an unterminated line are buffered.
    pub fn has_partial(&self) -> bool {
        !self.buf.is_empty()
    }

    /// True once a line was refused.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }

    /// Appends a chunk of the body. When the unterminated tail is already longer than the limit
    /// it is dropped at once and the decoder poisoned (reported by the next
    /// [`LineDecoder::next_line`]), so an endless line never holds more than limit + one chunk.
    pub fn push(&mut self, chunk: Bytes) {
        if self.poisoned || chunk.is_empty() {
            return;
        }
        self.buf.extend_from_slice(&chunk);
        if self.buf.len() > self.max_line {
            match find_newline(&self.buf[self.scanned..]) {
                Some(_) => {}
                None => self.poison(),
            }
        }
    }

    /// The next complete, non-blank line, `Ok(None)` when more bytes are needed, or the error
    /// when a line is longer than the limit.
    pub fn next_line(&mut self) -> Result<Option<Bytes>, DecodeError> {
        loop {
            if self.poisoned {
                return Err(self.too_long());
            }
            match find_newline(&self.buf[self.scanned..]) {
                Some(offset) => {
                    let end = self.scanned + offset;
                    let mut line = self.buf.split_to(end + 1);
                    self.scanned = 0;
                    line.truncate(end);
                    if line.len() > self.max_line {
                        self.poison();
                        continue;
                    }
                    if line.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    return Ok(Some(line.freeze()));
                }
                None => {
                    self.scanned = self.buf.len();
                    if self.buf.len() > self.max_line {
                        self.poison();
                        continue;
                    }
                    return Ok(None);
                }
            }
        }
    }

    /// Takes the unterminated tail (for reporting at end of stream) and empties the buffer.
    pub fn take_partial(&mut self) -> Bytes {
        self.scanned = 0;
        self.buf.split().freeze()
    }

    fn poison(&mut self) {
        self.poisoned = true;
        self.buf = BytesMut::new();
        self.scanned = 0;
    }

    fn too_long(&self) -> DecodeError {
        DecodeError::LineTooLong {
            limit: self.max_line,
        }
    }
}

fn find_newline(bytes: &[u8]) -> Option<usize> {
    memchr::memchr(b'\n', bytes)
}

/// Why [`BodyLines::next_line`] failed.
#[derive(Debug, thiserror::Error)]
pub enum BodyLinesError {
    /// A line was longer than the limit; the stream must be closed.
    #[error("line longer than {limit} bytes")]
    LineTooLong {
        /// The limit in force, in bytes.
        limit: usize,
    },
    /// Reading the body failed (connection reset, aborted, timed out at the transport…).
    /// The original error is kept: see [`BodyLinesError::is_reset`] and
    /// [`crate::client::classify_error`].
    #[error("reading the body failed")]
    Body(#[source] BoxError),
    /// The body ended in the middle of a line.
    #[error("body ended inside a line of {len} bytes")]
    IncompleteLine {
        /// Bytes of the unterminated line.
        len: usize,
    },
}

impl BodyLinesError {
    /// True when the body broke because the connection was reset, aborted or closed before the
    /// end of the message.
    pub fn is_reset(&self) -> bool {
        match self {
            BodyLinesError::Body(err) => {
                crate::client::classify_error(err.as_ref()) == ErrorReason::ConnectionReset
            }
            _ => false,
        }
    }

    /// The reason to report for this failure: `EventTooLarge` for a refused line, the
    /// classification of the transport error for a broken body (usually `ConnectionReset`),
    /// `ConnectionReset` for a stream cut inside a line.
    pub fn reason(&self) -> ErrorReason {
        match self {
            BodyLinesError::LineTooLong { .. } => ErrorReason::EventTooLarge,
            BodyLinesError::Body(err) => match crate::client::classify_error(err.as_ref()) {
                ErrorReason::Unknown => ErrorReason::ConnectionReset,
                other => other,
            },
            BodyLinesError::IncompleteLine { .. } => ErrorReason::ConnectionReset,
        }
    }
}

impl From<DecodeError> for BodyLinesError {
    fn from(err: DecodeError) -> Self {
        match err {
            DecodeError::LineTooLong { limit } => BodyLinesError::LineTooLong { limit },
        }
    }
}

/// Reads a body line by line through a [`LineDecoder`].
#[derive(Debug)]
pub struct BodyLines<B> {
    body: B,
    decoder: LineDecoder,
    ended: bool,
}

impl<B> BodyLines<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    /// Lines of `body`, each at most `max_line` bytes.
    pub fn new(body: B, max_line: usize) -> Self {
        Self {
            body,
            decoder: LineDecoder::new(max_line),
            ended: false,
        }
    }

    /// The next non-blank line; `Ok(None)` at a clean end of the body.
    ///
    /// Cancel-safe: dropping the returned future before it completes loses no data (chunks
    /// already read stay in the decoder), so it may be raced against a deadline per line.
    pub async fn next_line(&mut self) -> Result<Option<Bytes>, BodyLinesError> {
        loop {
            if let Some(line) = self.decoder.next_line()? {
                return Ok(Some(line));
            }
            if self.ended {
                if self.decoder.has_partial() {
                    let len = self.decoder.take_partial().len();
                    return Err(BodyLinesError::IncompleteLine { len });
                }
                return Ok(None);
            }
            // `frame()` only takes data out of the body when it completes: cancelling it here
            // loses nothing.
            match self.body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.decoder.push(data);
                    }
                }
                Some(Err(err)) => return Err(BodyLinesError::Body(err.into())),
                None => self.ended = true,
            }
        }
    }

    /// Bytes buffered in the decoder.
    pub fn buffered(&self) -> usize {
        self.decoder.buffered()
    }

    /// The body, for dropping it early (which closes the connection).
    pub fn into_inner(self) -> B {
        self.body
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use tokio::sync::mpsc;

    /// A body fed by a channel: data chunks, then an optional error, then the end.
    struct ChannelBody(mpsc::Receiver<Result<Bytes, BoxError>>);

    impl Body for ChannelBody {
        type Data = Bytes;
        type Error = BoxError;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
            self.0
                .poll_recv(cx)
                .map(|item| item.map(|r| r.map(http_body::Frame::data)))
        }
    }

    fn channel_body(capacity: usize) -> (mpsc::Sender<Result<Bytes, BoxError>>, ChannelBody) {
        let (tx, rx) = mpsc::channel(capacity);
        (tx, ChannelBody(rx))
    }

    fn lines_of(decoder: &mut LineDecoder) -> Result<Vec<Vec<u8>>, DecodeError> {
        let mut out = Vec::new();
        while let Some(line) = decoder.next_line()? {
            out.push(line.to_vec());
        }
        Ok(out)
    }

    #[test]
    fn splits_lines_across_chunks_and_skips_blank_ones() {
        let mut d = LineDecoder::new(64);
        d.push(Bytes::from_static(b"{\"a\":1}\n\n{\"b\""));
        assert_eq!(lines_of(&mut d).unwrap(), vec![b"{\"a\":1}".to_vec()]);
        assert!(d.has_partial());
        d.push(Bytes::from_static(b":2}\n  \n"));
        assert_eq!(lines_of(&mut d).unwrap(), vec![b"{\"b\":2}".to_vec()]);
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn line_of_exactly_the_limit_is_accepted() {
        let mut d = LineDecoder::new(4);
        d.push(Bytes::from_static(b"abcd"));
        assert_eq!(d.next_line(), Ok(None));
        d.push(Bytes::from_static(b"\n"));
        assert_eq!(d.next_line(), Ok(Some(Bytes::from_static(b"abcd"))));
    }

    #[test]
    fn long_terminated_line_is_refused() {
        let mut d = LineDecoder::new(4);
        d.push(Bytes::from_static(b"abcde\nok\n"));
        assert_eq!(d.next_line(), Err(DecodeError::LineTooLong { limit: 4 }));
        // Poisoned: the rest is not delivered and nothing stays buffered.
        assert_eq!(d.next_line(), Err(DecodeError::LineTooLong { limit: 4 }));
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn endless_line_is_refused_as_soon_as_it_passes_the_limit() {
        let mut d = LineDecoder::new(10);
        d.push(Bytes::from_static(b"0123456789"));
        assert_eq!(d.next_line(), Ok(None));
        d.push(Bytes::from_static(b"x"));
        assert!(d.is_poisoned());
        assert_eq!(d.buffered(), 0);
        assert_eq!(d.next_line(), Err(DecodeError::LineTooLong { limit: 10 }));
        d.push(Bytes::from(vec![b'y'; 1_000]));
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn many_pushes_without_reading_stay_bounded_for_an_endless_line() {
        let mut d = LineDecoder::new(100);
        for _ in 0..1_000 {
            d.push(Bytes::from(vec![b'z'; 30]));
            assert!(d.buffered() <= 100 + 30);
        }
        assert!(d.next_line().is_err());
    }

    #[tokio::test]
    async fn body_lines_reads_a_full_body_and_ends_cleanly() {
        let body = http_body_util::Full::new(Bytes::from_static(b"one\ntwo\n"));
        let mut lines = BodyLines::new(body, 16);
        assert_eq!(lines.next_line().await.unwrap().unwrap(), "one");
        assert_eq!(lines.next_line().await.unwrap().unwrap(), "two");
        assert!(lines.next_line().await.unwrap().is_none());
        assert!(lines.next_line().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn body_lines_reports_an_incomplete_last_line() {
        let body = http_body_util::Full::new(Bytes::from_static(b"one\ntw"));
        let mut lines = BodyLines::new(body, 16);
        assert_eq!(lines.next_line().await.unwrap().unwrap(), "one");
        let err = lines.next_line().await.unwrap_err();
        assert!(
            matches!(err, BodyLinesError::IncompleteLine { len: 2 }),
            "{err:?}"
        );
        assert_eq!(err.reason(), ErrorReason::ConnectionReset);
        assert!(lines.next_line().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn body_lines_refuses_a_huge_line() {
        let body = http_body_util::Full::new(Bytes::from(vec![b'a'; 100]));
        let mut lines = BodyLines::new(body, 16);
        let err = lines.next_line().await.unwrap_err();
        assert!(matches!(err, BodyLinesError::LineTooLong { limit: 16 }));
        assert_eq!(err.reason(), ErrorReason::EventTooLarge);
    }

    #[tokio::test]
    async fn body_lines_passes_body_errors_through() {
        let (tx, body) = channel_body(4);
        let mut lines = BodyLines::new(body, 16);
        tx.send(Ok(Bytes::from_static(b"ok\npart"))).await.unwrap();
        assert_eq!(lines.next_line().await.unwrap().unwrap(), "ok");
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        tx.send(Err(Box::new(reset))).await.unwrap();
        let err = lines.next_line().await.unwrap_err();
        assert!(matches!(err, BodyLinesError::Body(_)), "{err:?}");
        assert!(err.is_reset());
        assert_eq!(err.reason(), ErrorReason::ConnectionReset);
    }

    #[tokio::test(start_paused = true)]
    async fn slow_drip_without_newline_still_times_out_per_line() {
        let (tx, body) = channel_body(1);
        let drip = tokio::spawn(async move {
            // One byte every 100 ms, never a newline, for far longer than the idle deadline.
            for _ in 0..1_000 {
                if tx.send(Ok(Bytes::from_static(b"x"))).await.is_err() {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        });
        let mut lines = BodyLines::new(body, 1 << 20);
        let idle = std::time::Duration::from_secs(1);
        let started = tokio::time::Instant::now();
        let outcome = tokio::time::timeout(idle, lines.next_line()).await;
        assert!(outcome.is_err(), "the idle deadline fires despite the drip");
        assert_eq!(started.elapsed(), idle);
        // The bytes that did arrive are kept by the struct, not lost with the future.
        assert!(lines.buffered() >= 9, "buffered {}", lines.buffered());
        drip.abort();
    }

    #[tokio::test]
    async fn cancelled_next_line_loses_no_data() {
        let (tx, body) = channel_body(4);
        let mut lines = BodyLines::new(body, 64);
        tx.send(Ok(Bytes::from_static(b"{\"half"))).await.unwrap();
        let first = tokio::time::timeout(std::time::Duration::from_millis(20), lines.next_line());
        assert!(first.await.is_err());
        tx.send(Ok(Bytes::from_static(b"\":1}\n"))).await.unwrap();
        assert_eq!(lines.next_line().await.unwrap().unwrap(), "{\"half\":1}");
    }

    fn expected_lines(input: &[u8]) -> Vec<Vec<u8>> {
        input
            .split(|b| *b == b'\n')
            .collect::<Vec<_>>()
            .split_last()
            .map(|(_, complete)| complete.to_vec())
            .unwrap_or_default()
            .into_iter()
            .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
            .map(<[u8]>::to_vec)
            .collect()
    }

    fn chunked(input: &[u8], cuts: &[usize]) -> Vec<Bytes> {
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
        points.push(0);
        points.push(input.len());
        points.sort_unstable();
        points.dedup();
        points
            .windows(2)
            .map(|w| Bytes::copy_from_slice(&input[w[0]..w[1]]))
            .collect()
    }

    proptest! {
        #[test]
        fn arbitrary_chunks_never_panic_and_respect_the_limit(
            input in proptest::collection::vec(prop_oneof![Just(b'\n'), Just(b' '), any::<u8>()], 0..600),
            cuts in proptest::collection::vec(any::<usize>(), 0..40),
            limit in 0usize..80,
        ) {
            let chunks = chunked(&input, &cuts);
            let max_chunk = chunks.iter().map(Bytes::len).max().unwrap_or(0);
            let mut d = LineDecoder::new(limit);
            let mut got = Vec::new();
            let mut failed = false;
            for chunk in chunks {
                d.push(chunk);
                prop_assert!(d.buffered() <= limit + max_chunk);
                loop {
                    match d.next_line() {
                        Ok(Some(line)) => {
                            prop_assert!(line.len() <= limit);
                            prop_assert!(!line.contains(&b'\n'));
                            got.push(line.to_vec());
                        }
                        Ok(None) => break,
                        Err(DecodeError::LineTooLong { limit: l }) => {
                            prop_assert_eq!(l, limit);
                            failed = true;
                            break;
                        }
                    }
                }
                prop_assert!(d.buffered() <= limit);
            }
            let expected = expected_lines(&input);
            // Every segment, blank or not, terminated or not, must fit for no refusal.
            let all_fit = input.split(|b| *b == b'\n').all(|l| l.len() <= limit);
            if all_fit {
                prop_assert!(!failed);
                prop_assert_eq!(got, expected);
            } else {
                prop_assert!(failed);
                // What was delivered before the refusal is a prefix of the expected lines.
                prop_assert!(expected.starts_with(&got));
            }
        }

        #[test]
        fn body_lines_deliver_the_same_lines_and_report_a_cut_tail(
            input in proptest::collection::vec(prop_oneof![Just(b'\n'), any::<u8>()], 0..400),
            cuts in proptest::collection::vec(any::<usize>(), 0..20),
            limit in 1usize..60,
        ) {
            let chunks = chunked(&input, &cuts);
            let frames = chunks
                .into_iter()
                .map(|c| Ok::<_, std::convert::Infallible>(http_body::Frame::data(c)));
            let body = http_body_util::StreamBody::new(futures::stream::iter(frames));
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let (got, end) = runtime.block_on(async {
                let mut lines = BodyLines::new(body, limit);
                let mut got = Vec::new();
                loop {
                    match lines.next_line().await {
                        Ok(Some(line)) => got.push(line.to_vec()),
                        Ok(None) => return (got, None),
                        Err(err) => return (got, Some(err)),
                    }
                }
            });
            let expected = expected_lines(&input);
            let all_fit = input.split(|b| *b == b'\n').all(|l| l.len() <= limit);
            let tail = input.len() - input.iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1);
            match end {
                None => {
                    prop_assert!(all_fit && tail == 0);
                    prop_assert_eq!(got, expected);
                }
                Some(BodyLinesError::IncompleteLine { len }) => {
                    prop_assert!(all_fit);
                    prop_assert_eq!(len, tail);
                    prop_assert_eq!(got, expected);
                }
                Some(BodyLinesError::LineTooLong { limit: l }) => {
                    prop_assert!(!all_fit);
                    prop_assert_eq!(l, limit);
                    prop_assert!(expected.starts_with(&got));
                }
                Some(other) => prop_assert!(false, "unexpected {other:?}"),
            }
        }
    }
}
