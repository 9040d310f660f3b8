//! A Docker API version shim. testcontainers 0.28 (through bollard) asks for API 1.53 and never
//! negotiates, while older engines (Debian bookworm's docker.io 20.10: 1.41) refuse any version
//! above their own. The shim forwards TCP on loopback to the engine's Unix socket and rewrites
//! ` /v1.NN/` in request lines to the engine's version; everything else passes through untouched.

use std::path::PathBuf;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UnixStream};

/// Starts the shim on its own thread (it outlives every test's runtime); returns `tcp://…`.
pub fn start(socket: PathBuf, engine_minor: u32) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("shim runtime");
        runtime.block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("shim bind");
            tx.send(listener.local_addr().expect("shim addr")).unwrap();
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                let socket = socket.clone();
                tokio::spawn(async move {
                    if let Ok(engine) = UnixStream::connect(&socket).await {
                        let _ = forward(client, engine, engine_minor).await;
                    }
                });
            }
        });
    });
    format!("tcp://{}", rx.recv().expect("shim started"))
}

async fn forward(
    client: tokio::net::TcpStream,
    engine: UnixStream,
    engine_minor: u32,
) -> std::io::Result<()> {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut engine_read, mut engine_write) = engine.into_split();
    let upstream = async move {
        let mut pending = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = client_read.read(&mut buf).await?;
            if n == 0 {
                engine_write.write_all(&pending).await?;
                return engine_write.shutdown().await;
            }
            pending.extend_from_slice(&buf[..n]);
            rewrite(&mut pending, engine_minor);
            let keep = partial_match_len(&pending);
            let send = pending.len() - keep;
            engine_write.write_all(&pending[..send]).await?;
            pending.drain(..send);
        }
    };
    let downstream = async move {
        tokio::io::copy(&mut engine_read, &mut client_write).await?;
        client_write.shutdown().await
    };
    let (up, down) = tokio::join!(upstream, downstream);
    up.and(down)
}

const PREFIX: &[u8] = b" /v1.";
/// ` /v1.` + two digits + `/`.
const PATTERN_LEN: usize = PREFIX.len() + 3;

fn rewrite(bytes: &mut [u8], engine_minor: u32) {
    let mut i = 0;
    while i + PATTERN_LEN <= bytes.len() {
        let at = &bytes[i..i + PATTERN_LEN];
        if at.starts_with(PREFIX)
            && at[5].is_ascii_digit()
            && at[6].is_ascii_digit()
            && at[7] == b'/'
        {
            let minor = u32::from(at[5] - b'0') * 10 + u32::from(at[6] - b'0');
            if minor > engine_minor {
                let digits = format!("{engine_minor:02}");
                bytes[i + 5..i + 7].copy_from_slice(digits.as_bytes());
            }
            i += PATTERN_LEN;
        } else {
            i += 1;
        }
    }
}

/// Length of the longest tail that could still become a pattern once more bytes arrive.
fn partial_match_len(bytes: &[u8]) -> usize {
    (1..PATTERN_LEN.min(bytes.len() + 1))
        .rev()
        .find(|&len| {
            let tail = &bytes[bytes.len() - len..];
            tail.iter().enumerate().all(|(k, &b)| match k {
                0..5 => b == PREFIX[k],
                5 | 6 => b.is_ascii_digit(),
                _ => false,
            })
        })
        .unwrap_or(0)
}

#[test]
fn rewrites_only_newer_versions_and_holds_back_partial_patterns() {
    let mut line = b"GET /v1.53/containers/json HTTP/1.1\r\n".to_vec();
    rewrite(&mut line, 41);
    assert_eq!(&line[..], b"GET /v1.41/containers/json HTTP/1.1\r\n");
    let mut old = b"GET /v1.24/_ping HTTP/1.1\r\n".to_vec();
    rewrite(&mut old, 41);
    assert_eq!(&old[..], b"GET /v1.24/_ping HTTP/1.1\r\n");
    assert_eq!(partial_match_len(b"GET /v1.5"), 6);
    assert_eq!(partial_match_len(b"...}\r\n\r\n"), 0);
}
