"""The Prefect flows really run (against the session's Prefect server), not just their ``.fn``."""

import asyncio
import json

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

from augment import stages
from flows.evaluate import evaluate_flow
from flows.stages import judge_flow, prepare_flow, synthesize_flow, train_flow


async def _task_run_names(flow_run_id) -> list[str]:
    async with get_client() as client:
        runs = await client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return sorted(r.name for r in runs)


def test_stage_flows_end_to_end(tmp_path, params, prefect_api):
    import yaml

    # Two concurrent fits: the numbers must match the plain, sequential stage below.
    params["evaluate"].update(seeds=2, variants=["real", "real+synthetic"], workers=2)
    params_path = tmp_path / "params.yaml"
    params_path.write_text(yaml.safe_dump(params))
    p = str(params_path)
    d = lambda name: str(tmp_path / name)  # noqa: E731

    state = prepare_flow(params_path=p, out=d("prepared"), metrics=d("prepare.json"),
                         return_state=True)
    assert state.is_completed() and state.result()["classes"] == 10
    judge_flow(params_path=p, data=d("prepared"), out=d("judge.pt"), metrics=d("judge.json"))
    train_flow(params_path=p, data=d("prepared"), out=d("gan.pt"), samples=d("s.png"),
               logdir=d("live"), judge=d("judge.pt"), quality=d("quality.json"),
               settings=d("train_config.json"))
    summary = synthesize_flow(params_path=p, data=d("prepared"), model=d("gan.pt"),
                              judge=d("judge.pt"), out=d("syn"), metrics=d("syn.json"))
    assert "filter" not in summary
    assert summary["total"] == sum(summary["per_class"].values())
    state = evaluate_flow(params_path=p, data=d("prepared"), synthetic=d("syn"),
                          metrics=d("eval.json"), plots=d("plots"), report=d("rep/evaluate.md"),
                          return_state=True)
    assert state.is_completed()
    names = asyncio.run(_task_run_names(state.state_details.flow_run_id))
    assert names == ["real+synthetic-seed0", "real+synthetic-seed1", "real-seed0", "real-seed1"]
    metrics = json.loads((tmp_path / "eval.json").read_text())
    assert set(metrics) == {"seeds", "baseline", "recommended", "real", "real+synthetic",
                            "vs_real:real+synthetic", "vs_baseline:real+synthetic", "verdict"}
    sequential = stages.evaluate.run(params, data=d("prepared"), synthetic=d("syn"),
                                     metrics=d("eval_seq.json"), plots=d("plots_seq"),
                                     report=d("seq/evaluate.md"))
    assert json.loads((tmp_path / "eval_seq.json").read_text()) == metrics
    assert sequential["verdict"] == metrics["verdict"]
