//! Hugging Face architectures through the whole system, with the real binary: `mgrpo hf init`
//! writes a Qwen3 folder over the world's tokenizer, `mgrpo train` warm-starts and trains both
//! roles from it (`[models.ROLE] hf = …`), `mgrpo hf export --policy run:…` writes the trained
//! role back as an HF folder whose log-probs equal the run's checkpoint, and folders that do not
//! fit (missing, another tokenizer) are refused with the file named.
mod common;

use std::path::{Path, PathBuf};

use common::{mgrpo, succeed};
use mgrpo_models::{DeviceSpec, HfFolder, load_checkpoint};

fn tiny_config(dir: &Path, main: &Path, sub: &Path, steps: u64) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tiny = std::fs::read_to_string(root.join("examples/tiny.toml")).unwrap();
    let tiny = tiny
        .replacen(
            "[models.main]\npreset = \"tiny\"",
            &format!("[models.main]\nhf = {:?}", main.display().to_string()),
            1,
        )
        .replacen(
            "[models.sub]\npreset = \"tiny\"",
            &format!("[models.sub]\nhf = {:?}", sub.display().to_string()),
            1,
        )
        .replace("steps = 3\n", &format!("steps = {steps}\n"));
    assert!(tiny.contains("hf = "));
    let path = dir.join("hf.toml");
    std::fs::write(&path, tiny).unwrap();
    path
}

/// Trains `config` into `run` and checks that it logged `steps` steps.
fn train_steps(config: &Path, run: &Path, steps: usize) -> PathBuf {
    succeed(
        mgrpo()
            .args(["train", "--config"])
            .arg(config)
            .arg("--run")
            .arg(run),
    );
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().count(), steps, "{metrics}");
    run.to_path_buf()
}

fn init(config: &Path, family: &str, out: &Path) {
    let said = succeed(
        mgrpo()
            .args(["hf", "init", "--config"])
            .arg(config)
            .args([
                "--family",
                family,
                "--like",
                "tiny",
                "--kv-heads",
                "2",
                "--out",
            ])
            .arg(out),
    );
    assert!(said.contains(family), "{said}");
}

#[test]
fn qwen3_and_llama_roles_train_and_export_back_to_hf_folders() {
    let dir = tempfile::tempdir().unwrap();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/tiny.toml");
    let (main, sub) = (dir.path().join("qwen3"), dir.path().join("llama"));
    init(&examples, "qwen3", &main);
    init(&examples, "llama", &sub);
    let config = tiny_config(dir.path(), &main, &sub, 2);
    // The sub role is stored in bf16 when exported (training stays f32).
    let text = std::fs::read_to_string(&config).unwrap();
    let sub_line = format!("hf = {:?}\n", sub.display().to_string());
    assert_eq!(text.matches(&sub_line).count(), 1);
    std::fs::write(
        &config,
        text.replace(&sub_line, &format!("{sub_line}dtype = \"bf16\"\n")),
    )
    .unwrap();
    let run = train_steps(&config, &dir.path().join("run"), 2);
    let device = DeviceSpec::flex_cpu().to_device().unwrap();
    let export = |role: &str, out: &Path, dtype: Option<&str>| {
        let mut cmd = mgrpo();
        cmd.args(["hf", "export", "--policy"])
            .arg(format!("run:{}", run.display()))
            .args(["--role", role, "--out"])
            .arg(out);
        if let Some(d) = dtype {
            cmd.args(["--dtype", d]);
        }
        succeed(&mut cmd)
    };
    let torch_dtype = |out: &Path| -> String {
        let c: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("config.json")).unwrap()).unwrap();
        c["torch_dtype"].as_str().unwrap().to_string()
    };
    for (role, source) in [("main", &main), ("sub", &sub)] {
        let out = dir.path().join(format!("export-{role}"));
        let said = export(role, &out, None);
        if role == "sub" {
            // By default in the role's configured dtype: close to the checkpoint, not equal;
            // `--dtype f32` overrides it (and gives the exact checkpoint, checked below).
            assert!(said.contains("bf16"), "{said}");
            assert_eq!(torch_dtype(&out), "bfloat16");
            let half = HfFolder::open(&out).unwrap().load(&device).unwrap();
            let again = export(role, &out, Some("f32"));
            assert!(again.contains("f32"), "{again}");
            let full = HfFolder::open(&out).unwrap().load(&device).unwrap();
            let row = vec![1, 7, 9, 30, 2, 11, 5, 40, 3];
            let (a, b) = (
                half.score(std::slice::from_ref(&row)).unwrap(),
                full.score(std::slice::from_ref(&row)).unwrap(),
            );
            let worst = a[0]
                .iter()
                .zip(&b[0])
                .map(|(x, y)| (x - y).abs())
                .fold(0.0, f32::max);
            assert!(
                worst > 0.0 && worst < 0.5,
                "bf16 export moved a log-prob by {worst}"
            );
        }
        assert_eq!(torch_dtype(&out), "float32");
        let version: u64 = said
            .split("version ")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{said}"));
        assert!(version > 0, "{said}");
        let ck = load_checkpoint(
            &run.join("checkpoints").join(role).join(version.to_string()),
            &device,
            None,
        )
        .unwrap();
        let exported = HfFolder::open(&out).unwrap().load(&device).unwrap();
        let started = HfFolder::open(source).unwrap().load(&device).unwrap();
        let row = vec![1, 7, 9, 30, 2, 11, 5, 40, 3];
        let score = |p: &mgrpo_models::Policy| p.score(std::slice::from_ref(&row)).unwrap();
        assert_eq!(
            score(&exported),
            score(&ck.policy),
            "{role}: export ≠ checkpoint"
        );
        assert_ne!(
            score(&exported),
            score(&started),
            "{role}: nothing was trained"
        );
        assert!(
            out.join("tokenizer.json").is_file() && out.join("tokenizer_config.json").is_file()
        );
    }
}

#[test]
fn folders_that_do_not_fit_the_run_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/tests/fixtures/hf");
    // Missing folder: named when the role's learner starts.
    let missing = dir.path().join("nowhere");
    let config = tiny_config(dir.path(), &missing, &missing, 1);
    let out = mgrpo()
        .args(["train", "--config"])
        .arg(&config)
        .arg("--run")
        .arg(dir.path().join("run"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("nowhere") && err.contains("no such model folder"),
        "{err}"
    );
    // A real Qwen3 folder with another (byte-level BPE) tokenizer than the world's.
    let other = dir.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(fixtures.join("qwen3").join(f), other.join(f)).unwrap();
    }
    std::fs::copy(
        fixtures.join("tokenizer/tokenizer.json"),
        other.join("tokenizer.json"),
    )
    .unwrap();
    let config = tiny_config(dir.path(), &other, &other, 1);
    let out = mgrpo()
        .args(["train", "--config"])
        .arg(&config)
        .arg("--run")
        .arg(dir.path().join("run2"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("396 tokens but the model's vocab_size is 64"),
        "{err}"
    );
    // A folder that is not there.
    let out = mgrpo()
        .args(["hf", "export", "--policy", "hf:/nonexistent", "--out"])
        .arg(dir.path().join("x"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such model folder"));
}

/// A role with its own tokenizer and chat template: the main agent is a Qwen3 over a byte-level
/// BPE tokenizer with a ChatML template (the parity fixture's), the sub-agent the world's
/// preset. It warm-starts on demonstrations framed as chats, trains, checkpoints with its own
/// tokenizer, evaluates, and exports with the template.
#[test]
fn a_role_with_its_own_tokenizer_and_chat_template_trains() {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let examples = root.join("examples/tiny.toml");
    let fixture = root.join("models/tests/fixtures/hf/tokenizer");
    let main = dir.path().join("qwen3-chat");
    let said = succeed(
        mgrpo()
            .args(["hf", "init", "--config"])
            .arg(&examples)
            .args(["--like", "tiny", "--tokenizer"])
            .arg(&fixture)
            .arg("--out")
            .arg(&main),
    );
    assert!(said.contains("with its chat template"), "{said}");
    let tiny = std::fs::read_to_string(&examples).unwrap();
    let text = tiny
        .replacen(
            "[models.main]\npreset = \"tiny\"",
            &format!("[models.main]\nhf = {:?}", main.display().to_string()),
            1,
        )
        .replace("steps = 3\n", "steps = 2\n");
    assert!(text.contains("hf = "));
    let config = dir.path().join("chat.toml");
    std::fs::write(&config, text).unwrap();
    let run = train_steps(&config, &dir.path().join("run"), 2);
    // Each role's checkpoints carry its own tokenizer.
    let ck = |role: &str| run.join("checkpoints").join(role).join("0/tokenizer.json");
    assert_eq!(
        std::fs::read(ck("main")).unwrap(),
        std::fs::read(fixture.join("tokenizer.json")).unwrap()
    );
    assert_ne!(
        std::fs::read(ck("sub")).unwrap(),
        std::fs::read(ck("main")).unwrap()
    );
    let said = succeed(
        mgrpo()
            .args(["eval", "--split", "dev", "--limit", "4", "--policy"])
            .arg(format!("run:{}", run.display())),
    );
    assert!(said.contains("accuracy"), "{said}");
    let out = dir.path().join("export");
    succeed(
        mgrpo()
            .args(["hf", "export", "--policy"])
            .arg(format!("run:{}", run.display()))
            .args(["--role", "main", "--out"])
            .arg(&out),
    );
    let exported = std::fs::read_to_string(out.join("tokenizer_config.json")).unwrap();
    assert!(exported.contains("<|im_start|>"), "{exported}");
}

/// LoRA on a warm-started HF model (the usual flow: full SFT, then adapter RL): checkpoints carry
/// the unmerged adapters (`lora.bpk`), and a run stopped after step 2 and resumed to step 4
/// stores exactly what an uninterrupted 4-step run stores and ends with the same weights.
#[test]
fn lora_roles_train_and_resume_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/tiny.toml");
    let folder = dir.path().join("qwen3");
    init(&examples, "qwen3", &folder);
    // A warm start that reaches non-zero rewards (tests/common's), without LoRA.
    let config = tiny_config(dir.path(), &folder, &folder, 4);
    let text = common::delegating_warm_start(&std::fs::read_to_string(&config).unwrap());
    assert!(text.contains("lr = 3e-3"));
    std::fs::write(&config, &text).unwrap();
    let warm = dir.path().join("warm");
    succeed(
        mgrpo()
            .args(["warmup", "--config"])
            .arg(&config)
            .arg("--run")
            .arg(&warm),
    );
    let lora = text.replace(
        "lr = 3e-4\n",
        "lr = 3e-4\nlora_rank = 4\nlora_alpha = 8.0\n",
    );
    assert_eq!(lora.matches("lora_rank").count(), 2);
    std::fs::write(&config, lora).unwrap();
    let train = |run: &Path, extra: &[&str]| {
        for role in ["main", "sub"] {
            let to = run.join("checkpoints").join(role).join("0");
            if !to.exists() {
                std::fs::create_dir_all(&to).unwrap();
                let from = warm.join("checkpoints").join(role).join("0");
                for f in std::fs::read_dir(from).unwrap() {
                    let f = f.unwrap();
                    std::fs::copy(f.path(), to.join(f.file_name())).unwrap();
                }
            }
        }
        // A resumed run reads its own config (and refuses another).
        let mut cmd = mgrpo();
        cmd.arg("train");
        if !extra.contains(&"--resume") {
            cmd.arg("--config").arg(&config);
        }
        succeed(cmd.arg("--run").arg(run).args(extra))
    };
    let whole = dir.path().join("whole");
    train(&whole, &[]);
    let cut = dir.path().join("cut");
    train(&cut, &["--steps", "2"]);
    train(&cut, &["--steps", "4", "--resume"]);
    let rewards: Vec<f64> = std::fs::read_to_string(whole.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["reward"]
                .as_f64()
                .unwrap()
        })
        .collect();
    assert!(
        rewards.iter().any(|&r| r > 0.0),
        "no reward, no gradient: {rewards:?}"
    );
    let (groups_whole, steps_whole) = common::store_records(&whole);
    let (groups_cut, steps_cut) = common::store_records(&cut);
    assert_eq!(groups_whole.len(), 4 * 2, "4 steps × 2 queries");
    assert_eq!(groups_whole, groups_cut, "resumed LoRA run diverged");
    assert_eq!(steps_whole, steps_cut);
    let device = DeviceSpec::flex_cpu().to_device().unwrap();
    for role in ["main", "sub"] {
        let latest = |run: &Path| {
            let run = mgrpo_actors::RunDir::new(run);
            run.checkpoint_path(role, run.latest_checkpoint(role).unwrap())
        };
        assert!(latest(&whole).join("lora.bpk").is_file());
        let row = vec![1, 7, 9, 30, 2, 11, 5, 40, 3];
        let score = |run: &Path| {
            load_checkpoint(&latest(run), &device, None)
                .unwrap()
                .policy
                .score(std::slice::from_ref(&row))
                .unwrap()
        };
        assert_eq!(
            score(&whole),
            score(&cut),
            "{role}: resumed LoRA weights differ"
        );
    }
}

/// `hf init --arch`: a released model's config.json gives the shape (here the Qwen3 fixture's,
/// its vocabulary widened to the BPE tokenizer); a vocabulary smaller than the tokenizer is
/// refused, and `--like` with `--arch` is a usage error.
#[test]
fn init_takes_a_shape_from_a_config_json() {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let fixtures = root.join("models/tests/fixtures/hf");
    let mut arch: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixtures.join("qwen3/config.json")).unwrap())
            .unwrap();
    let init = |arch_path: &Path, out: &Path| {
        mgrpo()
            .args(["hf", "init", "--config"])
            .arg(root.join("examples/tiny.toml"))
            .arg("--arch")
            .arg(arch_path)
            .arg("--tokenizer")
            .arg(fixtures.join("tokenizer"))
            .arg("--out")
            .arg(out)
            .output()
            .unwrap()
    };
    let small = dir.path().join("small.json");
    std::fs::write(&small, arch.to_string()).unwrap();
    let out = init(&small, &dir.path().join("a"));
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("vocab_size 64 is smaller"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    arch["vocab_size"] = 512.into();
    let wide = dir.path().join("wide.json");
    std::fs::write(&wide, arch.to_string()).unwrap();
    let folder = dir.path().join("b");
    let out = init(&wide, &folder);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let written = HfFolder::open(&folder).unwrap();
    let c = written.config();
    assert_eq!(
        (c.vocab_size, c.n_layers, c.hf.as_ref().unwrap().head_dim),
        (512, 2, 16)
    );
    let clash = mgrpo()
        .args(["hf", "init", "--like", "tiny", "--arch"])
        .arg(&wide)
        .arg("--out")
        .arg(dir.path().join("c"))
        .output()
        .unwrap();
    assert!(!clash.status.success());
    let said = String::from_utf8_lossy(&clash.stderr);
    assert!(
        said.contains("cannot be used with") && said.contains("--arch") && said.contains("--like"),
        "{said}"
    );
}

/// Qwen's tool section (its chat template's, as Qwen2.5 and Qwen3 ship it) before the
/// fixture's ChatML messages.
const QWEN_TOOLS_TEMPLATE: &str = r##"{%- if tools %}
    {{- '<|im_start|>system\n' }}
    {{- "# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
    {%- for tool in tools %}
        {{- "\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" }}
{%- endif %}
{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] | trim + '<|im_end|>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"##;

/// An HF sub-agent of a task with tools reads them in its prompt: the node lists the
/// `[[task.tools]]` servers (a real calc-mcp process) and the role's chat template renders
/// their names and schemas into the system prompt's `# Tools` block; the main agent, which
/// calls no tools, and a task without tools get no such block; a task's built-in `earlier` tool
/// is listed too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hf_sub_agent_reads_the_tasks_tools_in_its_chat_templates_system_prompt() {
    use mgrpo_actors::context::NodeContext;
    use mgrpo_actors::role::LearnerRole;
    use mgrpo_actors::role_codec::Place;
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let fixture = root.join("models/tests/fixtures/hf/tokenizer");
    let folder = dir.path().join("qwen3-tools");
    succeed(
        mgrpo()
            .args(["hf", "init", "--config"])
            .arg(root.join("examples/tiny.toml"))
            .args(["--like", "tiny", "--tokenizer"])
            .arg(&fixture)
            .arg("--out")
            .arg(&folder),
    );
    std::fs::write(folder.join("chat_template.jinja"), QWEN_TOOLS_TEMPLATE).unwrap();
    let lighthouses = root.join("examples/tasks/lighthouses");
    let task = |tools: &str| {
        format!(
            "[task]\nquestions = {:?}\ncorpus = {:?}\n{tools}\n\
             [models.main]\nhf = {:?}\n\n[models.sub]\nhf = {:?}\n",
            lighthouses.join("questions.jsonl").display().to_string(),
            lighthouses.join("docs").display().to_string(),
            folder.display().to_string(),
            folder.display().to_string(),
        )
    };
    let calc = format!(
        "[[task.tools]]\nname = \"calc\"\nmcp = {{ command = {:?} }}\nexpose = [\"convert\", \"subtract\"]\n",
        env!("CARGO_BIN_EXE_calc-mcp")
    );
    let open = |text: String, name: &str| {
        let file = dir.path().join(name);
        std::fs::write(&file, text).unwrap();
        let config = mgrpo_actors::Config::load(&file).unwrap();
        let run = mgrpo_actors::RunDir::new(dir.path().join(format!("run-{name}")));
        NodeContext::new(config, run, name.into()).unwrap()
    };
    let with_tools = open(task(&calc), "tools.toml");
    let sub = with_tools.codec(LearnerRole::Sub).unwrap();
    let prompt = &sub.chat_frame().unwrap().before_prompt;
    assert!(
        prompt.starts_with("<|im_start|>system\n# Tools\n"),
        "{prompt}"
    );
    for needle in [
        r#""name": "convert""#,
        r#""name": "subtract""#,
        "Convert a value between units",
        r#""required": ["value", "from", "to"]"#,
    ] {
        assert!(prompt.contains(needle), "{needle:?} not in:\n{prompt}");
    }
    assert!(
        !prompt.contains(r#""name":"add""#),
        "only the exposed tools"
    );
    // The prompt's tokens begin with that block.
    let tokens = sub.context(&["<task> a </task>"], Place::Start).unwrap();
    let hf = mgrpo_models::hf::HfTokenizer::from_folder(&folder).unwrap();
    assert!(hf.decode(&tokens).unwrap().starts_with(prompt.as_str()));
    // The main agent does not call tools; a task without tools has none to show.
    let main = with_tools.codec(LearnerRole::Main).unwrap();
    assert!(!main.chat_frame().unwrap().before_prompt.contains("# Tools"));
    let without = open(task(""), "plain.toml");
    let plain = without.codec(LearnerRole::Sub).unwrap();
    assert_eq!(
        plain.chat_frame().unwrap().before_prompt,
        "<|im_start|>user\n"
    );
    // The built-in `earlier` tool is listed by its spec, with no server to start.
    let builtin = open(task("builtin_tools = [\"earlier\"]\n"), "builtin.toml");
    let sub = builtin.codec(LearnerRole::Sub).unwrap();
    let prompt = &sub.chat_frame().unwrap().before_prompt;
    for needle in [
        "# Tools\n",
        r#""name": "earlier""#,
        r#""required": ["pair"]"#,
    ] {
        assert!(prompt.contains(needle), "{needle:?} not in:\n{prompt}");
    }
}
