//! This process as a rank of a distributed run. Rank 0 listens at `distributed.address`; every
//! other rank connects to it. A sum goes through rank 0: each rank sends its numbers, rank 0
//! adds them in rank order and sends the total back, so every rank gets the same bits. Every
//! wait has the spec's time limit, and a rank that stops closes its connection, which the
//! others see at once: a run never hangs on a missing rank.

use std::io::ErrorKind;
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

use super::wire::{self, Frame};
use crate::error::RunError;
use crate::spec::DistributedSpec;

/// This process's place in a distributed run, with its connections: rank 0 holds one per
/// other rank (index `rank - 1`), the others one, to rank 0.
pub struct Peer {
    rank: usize,
    nodes: usize,
    timeout: Duration,
    address: String,
    links: Mutex<Vec<TcpStream>>,
    sums: Mutex<SumTimes>,
}

/// The sums so far: how many, their total wait, the most numbers in one.
#[derive(Default)]
struct SumTimes {
    count: u32,
    waited: Duration,
    values: usize,
}

impl Peer {
    pub fn rank(&self) -> usize {
        self.rank
    }

    pub fn nodes(&self) -> usize {
        self.nodes
    }

    /// Joins the run `spec` describes: rank 0 waits for every other rank to connect, the
    /// others connect to it (retrying until rank 0 listens), all within `timeout_s`.
    pub fn join(spec: &DistributedSpec) -> Result<Self, RunError> {
        let timeout = Duration::from_secs_f64(spec.timeout_s);
        let mut peer = Self {
            rank: spec.rank,
            nodes: spec.nodes,
            timeout,
            address: spec.address.clone(),
            links: Mutex::default(),
            sums: Mutex::default(),
        };
        let links = if spec.rank == 0 {
            peer.accept_ranks()?
        } else {
            vec![peer.connect_to_rank_zero()?]
        };
        peer.links = Mutex::new(links);
        Ok(peer)
    }

    fn accept_ranks(&self) -> Result<Vec<TcpStream>, RunError> {
        let listener = TcpListener::bind(&self.address).map_err(|e| {
            self.error(format!(
                "cannot listen at {}: {e}; pick a free port with --set \
                 distributed.address=HOST:PORT (or MASTER_PORT), the same for every rank",
                self.address
            ))
        })?;
        listener
            .set_nonblocking(true)
            .map_err(|e| self.error(format!("listening at {}: {e}", self.address)))?;
        let deadline = Instant::now() + self.timeout;
        let mut slots: Vec<Option<TcpStream>> = (1..self.nodes).map(|_| None).collect();
        while slots.iter().any(Option::is_none) {
            match listener.accept() {
                Ok((stream, _)) => {
                    let mut stream = self.configure(stream)?;
                    let rank = wire::read_hello(&mut stream, self.nodes)
                        .map_err(|e| self.error(format!("a rank that connected: {e}")))?;
                    if slots[rank - 1].is_some() {
                        let message = format!(
                            "two processes say they are rank {rank}; give each its own \
                             distributed.rank (RANK)"
                        );
                        let _ = wire::write_error(&mut stream, &message);
                        return Err(self.error(message));
                    }
                    wire::write_hello(&mut stream, 0, self.nodes)
                        .map_err(|e| self.lost(rank, "answering its hello", e))?;
                    slots[rank - 1] = Some(stream);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    if Instant::now() > deadline {
                        let missing: Vec<String> = (1..self.nodes)
                            .filter(|r| slots[r - 1].is_none())
                            .map(|r| r.to_string())
                            .collect();
                        return Err(self.error(format!(
                            "rank(s) {} did not connect to {} within {:.0} s \
                             (distributed.timeout_s): start every rank with the same \
                             distributed.address and nodes",
                            missing.join(", "),
                            self.address,
                            self.timeout.as_secs_f64()
                        )));
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => return Err(self.error(format!("accepting a rank: {e}"))),
            }
        }
        Ok(slots.into_iter().flatten().collect())
    }

    fn connect_to_rank_zero(&self) -> Result<TcpStream, RunError> {
        let deadline = Instant::now() + self.timeout;
        let mut last_error = String::from("no address");
        while Instant::now() < deadline {
            let targets = self
                .address
                .to_socket_addrs()
                .map_err(|e| self.error(format!("distributed.address {}: {e}", self.address)))?;
            for target in targets {
                match TcpStream::connect_timeout(&target, Duration::from_secs(1)) {
                    Ok(stream) => {
                        let mut stream = self.configure(stream)?;
                        wire::write_hello(&mut stream, self.rank, self.nodes)
                            .map_err(|e| self.lost(0, "saying hello", e))?;
                        wire::read_answer(&mut stream, self.nodes)
                            .map_err(|e| self.error(format!("rank 0: {e}")))?;
                        return Ok(stream);
                    }
                    Err(e) => last_error = e.to_string(),
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(self.error(format!(
            "rank 0 did not answer at {} within {:.0} s (distributed.timeout_s; last: \
             {last_error}): start rank 0 with the same distributed.address",
            self.address,
            self.timeout.as_secs_f64()
        )))
    }

    fn configure(&self, stream: TcpStream) -> Result<TcpStream, RunError> {
        let set = || -> std::io::Result<()> {
            stream.set_nonblocking(false)?;
            stream.set_nodelay(true)?;
            stream.set_read_timeout(Some(self.timeout))?;
            stream.set_write_timeout(Some(self.timeout))
        };
        set().map_err(|e| self.error(format!("setting up a connection: {e}")))?;
        Ok(stream)
    }

    /// The element-wise sum of `tensor` over the ranks (every rank passes the same length).
    pub fn sum<B: Backend>(
        &self,
        tensor: Tensor<B, 1>,
        what: &str,
    ) -> Result<Tensor<B, 1>, RunError> {
        let device = tensor.device();
        let mut values: Vec<f32> = tensor
            .into_data()
            .convert::<f32>()
            .to_vec()
            .map_err(|e| self.error(format!("{what}: reading the numbers: {e:?}")))?;
        let started = Instant::now();
        let mut links = self
            .links
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if self.rank == 0 {
            self.gather_and_return(&mut links, &mut values, what)?;
        } else {
            self.send_and_receive(&mut links[0], &mut values, what)?;
        }
        let mut sums = self
            .sums
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        sums.count += 1;
        sums.waited += started.elapsed();
        sums.values = sums.values.max(values.len());
        let len = values.len();
        Ok(Tensor::from_data(TensorData::new(values, [len]), &device))
    }

    /// Rank 0: adds every rank's numbers to its own, in rank order, and sends the total back.
    fn gather_and_return(
        &self,
        links: &mut [TcpStream],
        values: &mut [f32],
        what: &str,
    ) -> Result<(), RunError> {
        for (i, link) in links.iter_mut().enumerate() {
            let rank = i + 1;
            match Frame::read(link, values.len()) {
                Ok(Frame::Values(theirs)) => {
                    values.iter_mut().zip(&theirs).for_each(|(v, t)| *v += t);
                }
                Ok(Frame::Error(message)) => {
                    let message = format!("rank {rank}, {what}: {message}");
                    self.tell_all(links, &message);
                    return Err(self.error(message));
                }
                Err(e) if e.kind() == ErrorKind::InvalidData => {
                    let message = format!("{what}: rank {rank}: {e}");
                    self.tell_all(links, &message);
                    return Err(self.error(message));
                }
                Err(e) => {
                    let error = self.lost(rank, what, e);
                    self.tell_all(links, &error.to_string());
                    return Err(error);
                }
            }
        }
        for (i, link) in links.iter_mut().enumerate() {
            wire::write_values(link, values).map_err(|e| self.lost(i + 1, what, e))?;
        }
        Ok(())
    }

    /// Ranks 1..: sends this rank's numbers to rank 0 and takes the total from it.
    fn send_and_receive(
        &self,
        link: &mut TcpStream,
        values: &mut [f32],
        what: &str,
    ) -> Result<(), RunError> {
        wire::write_values(link, values).map_err(|e| self.lost(0, what, e))?;
        match Frame::read(link, values.len()) {
            Ok(Frame::Values(total)) => {
                values.copy_from_slice(&total);
                Ok(())
            }
            Ok(Frame::Error(message)) => Err(self.error(format!("stopped by rank 0: {message}"))),
            Err(e) if e.kind() == ErrorKind::InvalidData => {
                Err(self.error(format!("{what}: from rank 0: {e}")))
            }
            Err(e) => Err(self.lost(0, what, e)),
        }
    }

    /// Rank 0, before it stops: tells every rank why, so that each prints the reason.
    fn tell_all(&self, links: &mut [TcpStream], message: &str) {
        for link in links {
            let _ = wire::write_error(link, message);
        }
    }

    /// Checks that every rank has the same value of each of `facts` (exact in f32: integers
    /// below 2^24, or f32 sums); an error lists every rank's value of those that differ.
    pub fn agree<B: Backend>(
        &self,
        facts: &[(&str, f32)],
        device: &B::Device,
    ) -> Result<(), RunError> {
        let width = facts.len();
        let mut slots = vec![0.0f32; width * self.nodes];
        for (i, (_, value)) in facts.iter().enumerate() {
            slots[self.rank * width + i] = *value;
        }
        let summed = self.sum::<B>(
            Tensor::from_data(TensorData::new(slots, [width * self.nodes]), device),
            "comparing the ranks",
        )?;
        let all: Vec<f32> = summed.into_data().to_vec().unwrap_or_default();
        let mut differences = Vec::new();
        for (i, (name, _)) in facts.iter().enumerate() {
            let values: Vec<f32> = (0..self.nodes).map(|r| all[r * width + i]).collect();
            if values.iter().any(|v| v.to_bits() != values[0].to_bits()) {
                let each: Vec<String> = values
                    .iter()
                    .enumerate()
                    .map(|(r, v)| format!("rank {r}: {v}"))
                    .collect();
                differences.push(format!("{name} ({})", each.join(", ")));
            }
        }
        if differences.is_empty() {
            return Ok(());
        }
        Err(self.error(format!(
            "the ranks disagree on {}; every rank must run the same spec (but \
             `distributed.rank`) from the same checkpoint: resume all of them, or start all \
             of them afresh",
            differences.join("; ")
        )))
    }

    /// What the sums over the ranks cost this rank: their number and mean wait (the
    /// transfer, plus waiting for the slowest rank).
    pub fn sum_report(&self) -> String {
        let sums = self
            .sums
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mean_ms = sums.waited.as_secs_f64() * 1e3 / f64::from(sums.count.max(1));
        format!(
            "rank {} of {}: {} sums over the ranks, {mean_ms:.1} ms each on average (up to {} \
             f32 values each), {:.1} s in all",
            self.rank,
            self.nodes,
            sums.count,
            sums.values,
            sums.waited.as_secs_f64()
        )
    }

    fn error(&self, message: String) -> RunError {
        RunError::Distributed(format!("rank {} of {}: {message}", self.rank, self.nodes))
    }

    /// A connection that failed: the rank at its other end stopped, or did not answer in time.
    fn lost(&self, other: usize, what: &str, e: std::io::Error) -> RunError {
        match e.kind() {
            ErrorKind::WouldBlock | ErrorKind::TimedOut => self.error(format!(
                "{what}: no answer from rank {other} within {:.0} s (distributed.timeout_s); \
                 it is stuck or far slower (raise the limit if a step or an evaluation takes \
                 that long)",
                self.timeout.as_secs_f64()
            )),
            _ => self.error(format!(
                "{what}: rank {other} closed its connection ({e}): it stopped; its own output \
                 says why"
            )),
        }
    }
}
