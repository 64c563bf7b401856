//! native/bench/httparse - request-head parsing with httparse, measured the
//! same way as native/bench/bench_parser.c measures synapserve and llhttp.
//!
//! Usage: bench-httparse [INPUT_DIR]   (default native/bench/inputs)
//!
//! Loads small.http, medium.http and large.http, checks that httparse takes
//! each whole, then times one parse with `Request::new` over 64 header slots:
//!   httparse        one `[EMPTY_HEADER; 64]` array, initialised once and
//!                   given to a new Request for every parse (as a server
//!                   keeping its header buffer does, and as the C harness
//!                   reuses one struct syn_h1_request): the headline;
//!   httparse-fresh  `Request::new(&mut [EMPTY_HEADER; 64])` for every
//!                   parse: the 2 KiB array's initialisation is timed too.
//! A sample is enough back-to-back parses for ~BENCH_SAMPLE_MS ms (default
//! 20), samples of both variants and all inputs are interleaved, and the
//! median of BENCH_SAMPLES (default 31, at least 21) samples is printed:
//!   parser=httparse input=small bytes=35 headers=1 ns=NN.N min=NN.N
//!
//! Builds with Debian 12's rustc 1.63 too: no std::hint::black_box.

use std::env;
use std::fs;
use std::process;
use std::time::Instant;

const INPUTS: [&str; 3] = ["small", "medium", "large"];
const MAX_HEADERS: usize = 64;

/// Hide a value from the optimiser (std::hint::black_box is Rust 1.66+).
#[inline(always)]
fn black_box<T: Copy>(x: T) -> T {
    unsafe { std::ptr::read_volatile(&x) }
}

/// One parse with a fresh header array: head length + header count, or 0.
#[inline(always)]
fn parse_fresh(buf: &[u8]) -> usize {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n + req.headers.len(),
        _ => 0,
    }
}

/// One parse into a caller's header array: head length + header count, or 0.
#[inline(always)]
fn parse_reuse<'a>(buf: &'a [u8], headers: &mut [httparse::Header<'a>]) -> usize {
    let mut req = httparse::Request::new(headers);
    match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n + req.headers.len(),
        _ => 0,
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Variant {
    Fresh,
    Reuse,
}

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Variant::Reuse => "httparse",
            Variant::Fresh => "httparse-fresh",
        }
    }
}

/// `iters` parses of `buf`; returns the sum of the results.
#[inline(never)]
fn run(v: Variant, buf: &[u8], iters: u64) -> usize {
    let mut acc = 0usize;
    match v {
        Variant::Fresh => {
            for _ in 0..iters {
                acc = acc.wrapping_add(parse_fresh(black_box(buf)));
            }
        }
        Variant::Reuse => {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            for _ in 0..iters {
                acc = acc.wrapping_add(parse_reuse(black_box(buf), &mut headers[..]));
            }
        }
    }
    acc
}

/// Iterations for one sample of about `sample_ns`.
fn calibrate(v: Variant, buf: &[u8], sample_ns: u64, sink: &mut usize) -> u64 {
    let mut iters: u64 = 1000;
    let mut t;
    *sink = sink.wrapping_add(run(v, buf, iters)); // warm up
    loop {
        let start = Instant::now();
        *sink = sink.wrapping_add(run(v, buf, iters));
        t = start.elapsed().as_nanos() as u64;
        if t >= sample_ns / 8 || iters >= 1 << 40 {
            break;
        }
        iters *= 4;
    }
    let n = (iters as f64 * sample_ns as f64 / t.max(1) as f64) as u64;
    n.max(1)
}

fn env_u64(name: &str, def: u64, min: u64, max: u64) -> u64 {
    match env::var(name) {
        Ok(s) if !s.is_empty() => match s.parse::<u64>() {
            Ok(v) if v >= min && v <= max => v,
            _ => {
                eprintln!("bench-httparse: {} must be {}..{}", name, min, max);
                process::exit(2);
            }
        },
        _ => def,
    }
}

fn main() {
    let dir = env::args()
        .nth(1)
        .unwrap_or_else(|| "native/bench/inputs".to_string());
    let nsamples = env_u64("BENCH_SAMPLES", 31, 21, 1001) as usize;
    let sample_ns = env_u64("BENCH_SAMPLE_MS", 20, 1, 10000) * 1_000_000;
    let variants = [Variant::Reuse, Variant::Fresh];

    let mut inputs: Vec<(&str, Vec<u8>, usize)> = Vec::new();
    for name in INPUTS.iter() {
        let path = format!("{}/{}.http", dir, name);
        let buf = match fs::read(&path) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("bench-httparse: {}: {}", path, e);
                process::exit(1);
            }
        };
        // httparse must take the whole head, and count its header fields.
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        let nheaders = match req.parse(&buf) {
            Ok(httparse::Status::Complete(n)) if n == buf.len() => req.headers.len(),
            r => {
                eprintln!(
                    "bench-httparse: {}: {:?}, expected Complete({})",
                    path,
                    r,
                    buf.len()
                );
                process::exit(1);
            }
        };
        inputs.push((name, buf, nheaders));
    }

    let mut sink = 0usize;
    let mut iters = vec![[0u64; 2]; inputs.len()];
    for (i, input) in inputs.iter().enumerate() {
        for (j, v) in variants.iter().enumerate() {
            iters[i][j] = calibrate(*v, &input.1, sample_ns, &mut sink);
        }
    }

    let mut samples =
        vec![[Vec::with_capacity(nsamples), Vec::with_capacity(nsamples)]; inputs.len()];
    for _ in 0..nsamples {
        for (i, input) in inputs.iter().enumerate() {
            for (j, v) in variants.iter().enumerate() {
                let start = Instant::now();
                sink = sink.wrapping_add(run(*v, &input.1, iters[i][j]));
                let t = start.elapsed().as_nanos() as f64;
                samples[i][j].push(t / iters[i][j] as f64);
            }
        }
    }
    unsafe { std::ptr::write_volatile(&mut sink, sink) };

    for (i, input) in inputs.iter().enumerate() {
        for (j, v) in variants.iter().enumerate() {
            let s = &mut samples[i][j];
            s.sort_by(|a, b| a.partial_cmp(b).unwrap());
            println!(
                "parser={} input={} bytes={} headers={} ns={:.1} min={:.1}",
                v.name(),
                input.0,
                input.1.len(),
                input.2,
                s[nsamples / 2],
                s[0]
            );
        }
    }
}
