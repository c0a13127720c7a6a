//! [`Engine`]: the multi-agent generation service other programs embed.
//!
//! The engine owns a worker thread that runs the [`EngineCore`] scheduler; any number of threads
//! submit requests to any hosted agent and wait on their [`RequestHandle`]s. Requests submitted
//! while others run join the running batch at the next step (continuous batching).

use std::collections::HashMap;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::thread::JoinHandle;

use burn::tensor::backend::Backend;
use mars2_models::{LoadedModel, ModelConfig, TextTokenizer, Transformer};

use crate::error::{EngineError, Result};
use crate::generate::{GenerationOutput, GenerationRequest};
use crate::kv::AgentId;
use crate::scheduler::{EngineConfig, EngineCore, EngineStats, RequestId};

type Reply<T> = Sender<Result<T>>;

enum Command<B: Backend> {
    AddAgent {
        name: String,
        model: Box<Transformer<B>>,
        config: Box<ModelConfig>,
        tokenizer: Box<Option<TextTokenizer>>,
        reply: Reply<AgentId>,
    },
    Submit {
        agent: AgentId,
        group: u64,
        request: GenerationRequest,
        reply: Reply<GenerationOutput>,
    },
    UpdateWeights {
        agent: AgentId,
        model: Box<Transformer<B>>,
        version: u64,
        reply: Reply<u64>,
    },
    Stats {
        reply: Sender<EngineStats>,
    },
}

/// A submitted request; [`RequestHandle::wait`] blocks until its output is ready.
pub struct RequestHandle {
    rx: Receiver<Result<GenerationOutput>>,
}

impl RequestHandle {
    pub fn wait(self) -> Result<GenerationOutput> {
        self.rx.recv().unwrap_or(Err(EngineError::ShutDown))
    }

    /// The output if it is ready, without blocking.
    pub fn try_wait(&self) -> Option<Result<GenerationOutput>> {
        self.rx.try_recv().ok()
    }
}

/// Several agents (models) in one process, sharing one KV budget, served by one worker thread.
pub struct Engine<B: Backend> {
    commands: Sender<Command<B>>,
    worker: Option<JoinHandle<()>>,
}

impl<B: Backend> Engine<B> {
    pub fn new(config: EngineConfig, device: B::Device) -> Self {
        let (tx, rx) = channel::<Command<B>>();
        let worker = std::thread::Builder::new()
            .name("mars2-engine".into())
            .spawn(move || worker_loop(EngineCore::<B>::new(config, device), rx))
            .expect("spawning the engine thread");
        Self {
            commands: tx,
            worker: Some(worker),
        }
    }

    fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> Command<B>) -> Result<T> {
        let (reply, rx) = channel();
        self.commands
            .send(make(reply))
            .map_err(|_| EngineError::ShutDown)?;
        rx.recv().unwrap_or(Err(EngineError::ShutDown))
    }

    /// Hosts a loaded model under `name`; returns its id.
    pub fn add_agent(&self, name: &str, loaded: LoadedModel<B>) -> Result<AgentId> {
        self.ask(|reply| Command::AddAgent {
            name: name.to_string(),
            model: Box::new(loaded.model),
            config: Box::new(loaded.config),
            tokenizer: Box::new(loaded.tokenizer),
            reply,
        })
    }

    /// Queues a request; `group` ties the requests of one search tree together for fairness.
    pub fn submit(&self, agent: AgentId, group: u64, request: GenerationRequest) -> RequestHandle {
        let (reply, rx) = channel();
        if let Err(e) = self.commands.send(Command::Submit {
            agent,
            group,
            request,
            reply,
        }) {
            if let Command::Submit { reply, .. } = e.0 {
                let _ = reply.send(Err(EngineError::ShutDown));
            }
        }
        RequestHandle { rx }
    }

    /// Submits several requests and waits for all of them, in order.
    pub fn generate(
        &self,
        agent: AgentId,
        group: u64,
        requests: Vec<GenerationRequest>,
    ) -> Result<Vec<GenerationOutput>> {
        let handles: Vec<_> = requests
            .into_iter()
            .map(|r| self.submit(agent, group, r))
            .collect();
        handles.into_iter().map(RequestHandle::wait).collect()
    }

    /// Replaces an agent's weights; returns the new weights version. Requests under way
    /// start over with the new weights.
    pub fn update_weights(&self, agent: AgentId, model: Transformer<B>) -> Result<u64> {
        self.update_weights_as(agent, model, 0)
    }

    /// As [`Engine::update_weights`], numbering the new weights `version` when it is newer
    /// than the current version (else one past it).
    pub fn update_weights_as(
        &self,
        agent: AgentId,
        model: Transformer<B>,
        version: u64,
    ) -> Result<u64> {
        self.ask(|reply| Command::UpdateWeights {
            agent,
            model: Box::new(model),
            version,
            reply,
        })
    }

    pub fn stats(&self) -> Result<EngineStats> {
        let (reply, rx) = channel();
        self.commands
            .send(Command::Stats { reply })
            .map_err(|_| EngineError::ShutDown)?;
        rx.recv().map_err(|_| EngineError::ShutDown)
    }
}

impl<B: Backend> Drop for Engine<B> {
    fn drop(&mut self) {
        // Closing the channel lets the worker finish what it has and stop.
        let (dead, _) = channel();
        drop(std::mem::replace(&mut self.commands, dead));
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

fn worker_loop<B: Backend>(mut core: EngineCore<B>, rx: Receiver<Command<B>>) {
    let mut waiting: HashMap<RequestId, Reply<GenerationOutput>> = HashMap::new();
    let mut open = true;
    loop {
        if !core.has_work() {
            if !open {
                return;
            }
            match rx.recv() {
                Ok(cmd) => handle(&mut core, cmd, &mut waiting),
                Err(_) => return,
            }
        }
        loop {
            match rx.try_recv() {
                Ok(cmd) => handle(&mut core, cmd, &mut waiting),
                Err(std::sync::mpsc::TryRecvError::Empty) => break,
                Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                    open = false;
                    break;
                }
            }
        }
        if core.has_work() {
            core.step();
        }
        for (id, result) in core.take_finished() {
            if let Some(reply) = waiting.remove(&id) {
                let _ = reply.send(result);
            }
        }
    }
}

fn handle<B: Backend>(
    core: &mut EngineCore<B>,
    cmd: Command<B>,
    waiting: &mut HashMap<RequestId, Reply<GenerationOutput>>,
) {
    match cmd {
        Command::AddAgent {
            name,
            model,
            config,
            tokenizer,
            reply,
        } => {
            let _ = reply.send(core.add_agent(&name, *model, *config, *tokenizer));
        }
        Command::Submit {
            agent,
            group,
            request,
            reply,
        } => match core.submit(agent, group, request) {
            Ok(id) => {
                waiting.insert(id, reply);
            }
            Err(e) => {
                let _ = reply.send(Err(e));
            }
        },
        Command::UpdateWeights {
            agent,
            model,
            version,
            reply,
        } => {
            let _ = reply.send(core.update_weights_as(agent, *model, version));
        }
        Command::Stats { reply } => {
            let _ = reply.send(core.stats());
        }
    }
}
