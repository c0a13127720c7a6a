//! What a search run is: the method, its node budget and every switch of the algorithm, and
//! the team of agents that write nodes.

use mars2_sandbox::TestSet;
use serde::{Deserialize, Serialize};

use crate::posterior::PosteriorKind;

/// How the nodes of one problem are grown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Repeated sampling: every node is an independent fresh solution.
    Sample,
    /// Sequential refinement: every node refines the previous one.
    Chain,
    /// AB-MCTS-A with agents as actions; plain verdicts in refinement prompts.
    Abmcts,
    /// MARS²-T+: AB-MCTS with error feedback, depth-guided exploration and the reward model.
    Tplus,
}

impl Method {
    pub const ALL: [Method; 4] = [Method::Sample, Method::Chain, Method::Abmcts, Method::Tplus];

    pub fn as_str(self) -> &'static str {
        match self {
            Method::Sample => "sample",
            Method::Chain => "chain",
            Method::Abmcts => "abmcts",
            Method::Tplus => "tplus",
        }
    }
}

impl std::str::FromStr for Method {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Method::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| {
                format!("unknown method {s:?} (expected sample, chain, abmcts or tplus)")
            })
    }
}

/// What a refinement prompt shows of the tree above the node being refined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ContextMode {
    /// The problem, the parent's code and the parent's verdict.
    #[default]
    Parent,
    /// The whole root→parent path as one conversation: each ancestor's answer followed by
    /// its verdict. A child's prompt extends its parent's token sequence, so the engine
    /// reuses the cached blocks of the whole path.
    Path,
}

/// What a refinement prompt says of the parent's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum FeedbackMode {
    /// One line: passed, or failed k of n tests.
    #[default]
    Plain,
    /// The first failing test's input, expected and actual output, or the error message.
    Errors,
}

/// How a fresh solution (a child of the root) is asked for. Refinements always use the
/// project's prompts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PromptStyle {
    /// The project's system prompt and request (see [`crate::prompts`]).
    #[default]
    Project,
    /// EvalPlus's instruct-model prompt, the protocol behind the pass rates model makers
    /// report: no system message (the chat template's default), the task in a plain fence
    /// after EvalPlus's instruction, and the answer started for the model with EvalPlus's
    /// response prefix and an open ```python fence.
    EvalPlus,
    /// The prompt of Qwen2.5-Coder's own evaluation of its instruct models on EvalPlus's
    /// tasks: its system message, "Can you complete the following Python function?" over
    /// the task in a ```python fence, and the answer started with an open ```python fence.
    QwenCoder,
}

impl PromptStyle {
    pub fn is_project(&self) -> bool {
        *self == PromptStyle::Project
    }
}

impl std::str::FromStr for PromptStyle {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "project" => Ok(Self::Project),
            "evalplus" => Ok(Self::EvalPlus),
            "qwen-coder" => Ok(Self::QwenCoder),
            _ => Err(format!(
                "unknown prompt style {s:?} (expected project, evalplus or qwen-coder)"
            )),
        }
    }
}

/// How the agent that writes a new node is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AgentChoice {
    /// Thompson sampling over each agent's rewards in this tree.
    #[default]
    Thompson,
    /// UCB1 over each agent's rewards in this tree; an agent with no node yet goes first.
    Ucb1,
    /// Agents take turns in team order (the one with the fewest nodes so far writes next).
    Stack,
}

impl std::str::FromStr for AgentChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "thompson" => Ok(Self::Thompson),
            "ucb1" => Ok(Self::Ucb1),
            "stack" => Ok(Self::Stack),
            _ => Err(format!(
                "unknown agent choice {s:?} (expected thompson, ucb1 or stack)"
            )),
        }
    }
}

/// Every setting of one tree search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchConfig {
    pub method: Method,
    /// Nodes per tree (the root not counted).
    pub budget: usize,
    pub posterior: PosteriorKind,
    pub agent_choice: AgentChoice,
    pub context: ContextMode,
    pub feedback: FeedbackMode,
    /// How fresh solutions are asked for.
    #[serde(default, skip_serializing_if = "PromptStyle::is_project")]
    pub prompt_style: PromptStyle,
    /// Judge only the definitions of a program whose tests call its functions (EvalPlus's
    /// sanitizing): the examples and asserts a model writes after them are not run.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub definitions_only: bool,
    /// κ of the depth-guided GEN scaling ω(d, c_d) = (1 + c_d)^(−κ); 0 turns it off.
    pub depth_kappa: f64,
    /// When set, the search observes `α·guide + (1−α)·score` instead of the guide reward.
    pub blend_alpha: Option<f64>,
    /// Observe `passed/total` instead of all-or-nothing.
    pub partial_credit: bool,
    /// Stop growing a tree once a node passes every guiding test.
    pub stop_on_pass: bool,
    /// Tests that guide the search: public at evaluation, all in training.
    pub guide_tests: TestSet,
    /// Also judge every node on the hidden tests (for the metrics).
    pub score_hidden: bool,
    pub seed: u64,
}

impl SearchConfig {
    /// The evaluation defaults of `method` with `budget` nodes: public tests guide, hidden
    /// tests score; T+ turns on error feedback and depth guidance (κ = 0.5).
    pub fn for_eval(method: Method, budget: usize) -> Self {
        let tplus = method == Method::Tplus;
        SearchConfig {
            method,
            budget,
            posterior: PosteriorKind::Beta,
            agent_choice: AgentChoice::Thompson,
            context: ContextMode::Parent,
            feedback: if tplus {
                FeedbackMode::Errors
            } else {
                FeedbackMode::Plain
            },
            prompt_style: PromptStyle::Project,
            definitions_only: false,
            depth_kappa: if tplus { 0.5 } else { 0.0 },
            blend_alpha: None,
            partial_credit: false,
            stop_on_pass: true,
            guide_tests: TestSet::Public,
            score_hidden: true,
            seed: 0,
        }
    }

    /// The training defaults: all tests guide, no hidden scoring, the tree always grows to
    /// its full budget (every node is a training sample).
    pub fn for_training(method: Method, budget: usize) -> Self {
        SearchConfig {
            guide_tests: TestSet::All,
            score_hidden: false,
            stop_on_pass: false,
            ..Self::for_eval(method, budget)
        }
    }
}

/// Which nodes an agent may write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Fresh solutions and refinements.
    #[default]
    Any,
    /// Fresh solutions only (children of the root).
    Generator,
    /// Refinements only (children of generated nodes).
    Refiner,
}

impl Role {
    /// Whether an agent of this role may write a child of a node at `parent_depth`.
    pub fn may_write_under(self, parent_depth: usize) -> bool {
        match self {
            Role::Any => true,
            Role::Generator => parent_depth == 0,
            Role::Refiner => parent_depth > 0,
        }
    }
}

/// One member of the team: a model (index into the policy's models) in a role, with its own
/// system prompt and its own bandit arm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentSpec {
    pub name: String,
    pub model: usize,
    pub role: Role,
    /// `None`: the default system prompt of the role.
    pub system_prompt: Option<String>,
}

impl AgentSpec {
    /// An agent that writes any node with the default system prompt.
    pub fn new(name: impl Into<String>, model: usize) -> Self {
        AgentSpec {
            name: name.into(),
            model,
            role: Role::Any,
            system_prompt: None,
        }
    }

    /// One model as two agents: a generator (children of the root) and a refiner (deeper
    /// nodes), each with its own system prompt and bandit arm.
    pub fn multi_role(name: &str, model: usize) -> Vec<AgentSpec> {
        vec![
            AgentSpec {
                name: format!("{name}/generator"),
                model,
                role: Role::Generator,
                system_prompt: None,
            },
            AgentSpec {
                name: format!("{name}/refiner"),
                model,
                role: Role::Refiner,
                system_prompt: None,
            },
        ]
    }
}

impl std::str::FromStr for ContextMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "parent" => Ok(Self::Parent),
            "path" => Ok(Self::Path),
            _ => Err(format!("unknown context {s:?} (expected parent or path)")),
        }
    }
}
