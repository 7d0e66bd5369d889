"""How the report turns regressions of one incident into one finding, on findings built by hand:
which suspect leads a finding, which finding the others become symptoms of, and which leads the report."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from driftline.analyzers._model import Attribution, Evidence, Regression, Suspect, Window
from driftline.analyzers._report import Finding, changes_first, changes_over_buckets, corroborated, group_symptoms, stepped_tenants_first

T0 = datetime(2026, 11, 16, 16, 0, tzinfo=UTC)
INDEX, PROMPT, FINGERPRINT = ("index_version", "v119"), ("prompt_version", "v10"), ("system_fingerprint", "fp_b3")


def _suspect(pair: tuple[str, str], *, root: bool = False) -> Suspect:
    return Suspect((pair[0],), (pair[1],), 1.0, "worse", 0.8, 0.7, 500, 500, T0, None, Evidence("leaves"), root_cause=root)


def _finding(signal: str, minutes: float, *suspects: Suspect) -> Finding:
    start = T0 + timedelta(minutes=minutes)
    regression = Regression(signal, start, 0.8, 0.7, "down", -0.12, 0.999, 400, Evidence("sliced_by_bucket"))
    attribution = Attribution(signal, Window(start - timedelta(hours=1), start), Window(start, start + timedelta(hours=1)), 0.8, 0.7, suspects)
    return Finding("quality_regression", regression, attribution, None, None)


def _leads(findings: list[Finding]) -> list[tuple[str, str | None]]:
    return [(f.regression.signal, f.top_suspect.label if f.top_suspect else None) for f in findings]


def test_a_root_cause_another_finding_names_leads_over_a_candidate_inside_it() -> None:
    """An index rebuild lowers three quality scores; on one route a prompt published two minutes
    later holds nearly the same calls and ranks first there, while the stopping rule chose the
    index. The other scores name the index: it leads, and the three are one finding."""
    order = _finding("quality:order_accuracy", 4, _suspect(PROMPT), _suspect(INDEX, root=True))
    helpful = _finding("quality:helpfulness", -2, _suspect(INDEX, root=True), _suspect(FINGERPRINT))
    grounded = _finding("quality:groundedness", -8, _suspect(INDEX), _suspect(FINGERPRINT, root=True))
    found = group_symptoms(corroborated([order, helpful, grounded]))
    assert _leads(found) == [("quality:order_accuracy", "index_version=v119")]
    assert {r.signal for r in found[0].symptoms} == {"quality:helpfulness", "quality:groundedness"}


def test_a_candidate_outside_the_root_cause_set_keeps_its_lead_without_a_second_signal() -> None:
    """The same finding alone, or with another naming the index but starting an hour apart, keeps
    its ranking: nothing else speaks for the root cause over the candidate."""
    order = _finding("quality:order_accuracy", 4, _suspect(PROMPT), _suspect(INDEX, root=True))
    later = _finding("quality:helpfulness", 64, _suspect(INDEX, root=True))
    assert _leads(corroborated([order])) == [("quality:order_accuracy", "prompt_version=v10")]
    assert _leads(corroborated([order, later]))[0] == ("quality:order_accuracy", "prompt_version=v10")


def test_a_cause_decided_on_few_calls_yields_to_one_decided_on_many_that_explains_at_least_half_as_much() -> None:
    """A silent model swap ten minutes after a deploy: TTFT over 5,000 calls decides the swap;
    user feedback over 450 scored calls puts the deploy (whose calls hold the swap's) first and the
    swap close behind. Feedback is led by the swap and becomes TTFT's symptom. A feedback finding
    on more calls than TTFT's, or where the swap explains under half as much, keeps the deploy."""
    deploy, swap = ("service_version", "1.8.1"), ("response_model", "gpt-4o-2024-11-20")

    def feedback(swap_share: float, calls: int) -> Finding:
        found = _finding("quality:user_feedback", 5, replace(_suspect(deploy, root=True), explained_share=0.95), replace(_suspect(swap), explained_share=swap_share))
        return replace(found, regression=replace(found.regression, calls=calls))

    ttft = _finding("ttft_p99", 0, _suspect(swap, root=True))
    ttft = replace(ttft, regression=replace(ttft.regression, calls=5000))
    found = group_symptoms(corroborated([ttft, feedback(0.77, 450)]))
    assert _leads(found) == [("ttft_p99", "response_model=gpt-4o-2024-11-20")] and [r.signal for r in found[0].symptoms] == ["quality:user_feedback"]
    assert _leads(corroborated([ttft, feedback(0.77, 6000)]))[1] == ("quality:user_feedback", "service_version=1.8.1")
    assert _leads(corroborated([ttft, feedback(0.40, 450)]))[1] == ("quality:user_feedback", "service_version=1.8.1")


def test_a_finding_found_at_a_later_changes_moment_does_not_raise_that_change_over_an_earlier_start() -> None:
    """TTFT p50 rose on a route from a deploy's moment; p95 was found only by the test at a
    fingerprint's first call, 8 minutes later, so its baseline held the deploy's first slow calls
    and the fingerprint took its root-cause set. That does not raise the fingerprint over the
    deploy in p50's finding; the same p95 dated from its own shift still would."""
    deploy = ("service_version", "2.6.0")
    p50 = _finding("ttft_p50", 0, _suspect(deploy), _suspect(FINGERPRINT))
    p95 = _finding("ttft_p95", 8, _suspect(FINGERPRINT, root=True))
    anchored = replace(p95, regression=replace(p95.regression, anchor="system_fingerprint=fp_b3"))
    assert _leads(corroborated([p50, anchored]))[0] == ("ttft_p50", "service_version=2.6.0")
    assert _leads(corroborated([p50, p95]))[0] == ("ttft_p50", "system_fingerprint=fp_b3")


def test_a_finding_led_by_a_confidence_bucket_is_a_symptom_of_the_confidences_regression() -> None:
    """Quality fell on low-confidence transcripts while ASR confidence itself fell with a deploy:
    the confidence's finding leads, with the deploy, and the quality drop is its symptom. Without
    the confidence's regression the bucket stays the quality finding's suspect."""
    deploy, bucket = ("service_version", "2.5.0"), ("input_confidence", "low")
    quality = _finding("quality:order_accuracy", 6, _suspect(bucket), _suspect(deploy))
    confidence = _finding("input_confidence", 0, _suspect(deploy, root=True))
    found = group_symptoms([quality, confidence])
    assert _leads(found) == [("input_confidence", "service_version=2.5.0")]
    assert [r.signal for r in found[0].symptoms] == ["quality:order_accuracy"]
    latency = _finding("latency_p95", 0, _suspect(deploy, root=True))
    assert _leads(group_symptoms([quality, latency])) == [("quality:order_accuracy", "input_confidence=low"), ("latency_p95", "service_version=2.5.0")]


def test_a_quality_drop_dated_later_than_the_confidence_drop_is_its_symptom_when_it_names_the_same_deploy() -> None:
    """A sparse score's drop is dated 22 minutes after the confidence's (past the 15 that make
    signals one incident by time alone); it is still the confidence's symptom when it lists the
    deploy among its suspects, and not when it does not, or when the confidence fell later."""
    deploy, bucket = ("service_version", "2.5.0"), ("input_confidence", "medium")
    confidence = _finding("input_confidence", 0, _suspect(deploy, root=True))
    quality = _finding("quality:order_accuracy", 22, _suspect(bucket, root=True), _suspect(deploy))
    found = group_symptoms([quality, confidence])
    assert _leads(found) == [("input_confidence", "service_version=2.5.0")]
    assert [r.signal for r in found[0].symptoms] == ["quality:order_accuracy"]
    unnamed = _finding("quality:order_accuracy", 22, _suspect(bucket, root=True), _suspect(PROMPT))
    assert len(group_symptoms([unnamed, confidence])) == 2
    earlier = _finding("quality:order_accuracy", -22, _suspect(bucket, root=True), _suspect(deploy))
    assert _leads(group_symptoms([earlier, confidence]))[0] == ("quality:order_accuracy", "input_confidence=medium")


def test_a_cause_another_signals_stopping_rule_chose_leads_over_a_candidate_none_chose() -> None:
    """ASR confidence fell with a deploy (its root cause); quality fell too, with a prompt edited
    minutes before the deploy ranked over it and no root cause of its own. The deploy leads the
    quality finding as well, and the two are one finding; a candidate with under half the top's
    share is not raised."""
    deploy = ("service_version", "2.5.0")
    quality = _finding("quality:order_accuracy", 0, _suspect(PROMPT), _suspect(deploy))
    confidence = _finding("input_confidence", 0, _suspect(deploy, root=True), _suspect(PROMPT))
    found = group_symptoms(corroborated([quality, confidence]))
    assert _leads(found) == [("quality:order_accuracy", "service_version=2.5.0")]
    assert [r.signal for r in found[0].symptoms] == ["input_confidence"]
    slight = replace(_suspect(deploy), explained_share=0.4)
    assert _leads(corroborated([_finding("quality:order_accuracy", 0, _suspect(PROMPT), slight), confidence]))[0][1] == "prompt_version=v10"


def test_a_cause_another_signal_names_first_leads_where_it_explains_as_much_as_the_top() -> None:
    """ASR confidence fell with a deploy; the quality drop, dated four minutes later, is explained
    as much by the deploy as by an index rebuilt two minutes after it, which ranks first there only
    for lining up with the quality's start. No stopping rule chose either. The confidence names the
    deploy: it leads the quality finding too, and the two are one finding. Where the deploy
    explains less of the quality drop than the index, the index keeps its lead."""
    deploy = ("service_version", "2.5.0")
    confidence = _finding("input_confidence", 0, replace(_suspect(deploy), uncapped_share=1.04), replace(_suspect(INDEX), uncapped_share=1.02))
    quality = _finding("quality:order_accuracy", 4, replace(_suspect(INDEX), uncapped_share=0.785), replace(_suspect(deploy), uncapped_share=0.788))
    found = group_symptoms(corroborated([quality, confidence]))
    assert _leads(found) == [("quality:order_accuracy", "service_version=2.5.0")]
    assert [r.signal for r in found[0].symptoms] == ["input_confidence"]
    less = _finding("quality:order_accuracy", 4, replace(_suspect(INDEX), uncapped_share=0.785), replace(_suspect(deploy), uncapped_share=0.6))
    assert _leads(corroborated([less, confidence]))[0] == ("quality:order_accuracy", "index_version=v119")


def test_a_finding_a_change_lines_up_with_leads_over_a_shift_no_change_explains() -> None:
    """Latency p95 crept up 22% with the morning's load from 40 minutes before an ASR deploy that
    cut transcript confidence: detect ranks the latency first (it started first), but its suspects
    are a model and a prompt in use all day, while the deploy was first seen at the confidence's
    start. The confidence leads the report; so does a finding whose change is an annotated one
    lined up with its start though its value is old. Two findings no change explains keep
    detect's order."""
    all_day = T0 - timedelta(hours=5)
    model, deploy = ("request_model", "claude-sonnet-4-5"), ("service_version", "2.8.0")
    load = _finding("latency_p95", -40, replace(_suspect(model), first_seen=all_day), replace(_suspect(PROMPT, root=True), first_seen=all_day))
    confidence = _finding("input_confidence", 0, _suspect(deploy, root=True))
    assert _leads(changes_first([load, confidence])) == [("input_confidence", "service_version=2.8.0"), ("latency_p95", "request_model=claude-sonnet-4-5")]
    annotated = _finding("input_confidence", 0, replace(_suspect(deploy, root=True), first_seen=all_day, aligned_change="deploy voice-intake -> 2.8.0"))
    assert _leads(changes_first([load, annotated]))[0] == ("input_confidence", "service_version=2.8.0")
    old = _finding("input_confidence", 0, replace(_suspect(deploy, root=True), first_seen=all_day))
    assert _leads(changes_first([load, old])) == [("latency_p95", "request_model=claude-sonnet-4-5"), ("input_confidence", "service_version=2.8.0")]


def test_a_finding_only_a_test_at_a_changes_moment_found_stays_behind_the_others() -> None:
    """A finding found only by the test at an index rebuild's moment names that rebuild, but
    follows a finding dated from its own shift even when no change explains that one: its
    evidence is the weaker (one test where the whole scope showed nothing)."""
    all_day = T0 - timedelta(hours=5)
    load = _finding("latency_p95", -40, replace(_suspect(("request_model", "claude-sonnet-4-5")), first_seen=all_day))
    rebuild = _finding("latency_p50", 0, _suspect(INDEX, root=True))
    anchored = replace(rebuild, regression=replace(rebuild.regression, anchor="index_version=v119"))
    assert _leads(changes_first([load, anchored])) == [("latency_p95", "request_model=claude-sonnet-4-5"), ("latency_p50", "index_version=v119")]


def test_a_confidence_bucket_yields_its_lead_to_a_new_snapshot_when_confidence_did_not_move() -> None:
    """Extraction accuracy fell on a route whose model moved to a new snapshot six minutes before
    the drop was dated; most of the route's OCR reads are confident, so `input_confidence=high`
    explains a little more (0.92 against 0.86) and the stopping rule chose it. Confidence itself
    did not regress: the snapshot leads. It does not where confidence regressed too (the bucket
    then rides on that regression), where the snapshot explains under half as much, or where it
    was in use all day."""
    bucket, snapshot = ("input_confidence", "high"), ("response_model", "gpt-4o-mini-2025-01-31")
    high = replace(_suspect(bucket, root=True), explained_share=0.92, first_seen=None)
    new = replace(_suspect(snapshot), explained_share=0.86, first_seen=T0 - timedelta(minutes=6))
    quality = _finding("quality:extraction_accuracy", 0, high, new)
    assert _leads(changes_over_buckets([quality])) == [("quality:extraction_accuracy", "response_model=gpt-4o-mini-2025-01-31")]
    confidence = _finding("input_confidence", 0, _suspect(("service_version", "2.8.0"), root=True))
    assert _leads(changes_over_buckets([quality, confidence]))[0] == ("quality:extraction_accuracy", "input_confidence=high")
    slight = _finding("quality:extraction_accuracy", 0, high, replace(new, explained_share=0.4))
    all_day = _finding("quality:extraction_accuracy", 0, high, replace(new, first_seen=T0 - timedelta(hours=5)))
    assert _leads(changes_over_buckets([slight, all_day])) == [("quality:extraction_accuracy", "input_confidence=high")] * 2


def test_a_tenants_share_step_leads_over_a_pair_narrowing_it() -> None:
    """A tenant's share step found the drop; one model's calls of that tenant, read on a handful of
    baseline calls, explain a little more and rank first. The tenant leads; where it explains under
    half as much as the top suspect, or the finding came from no share step, the ranking stays."""
    tenant = _suspect(("tenant", "quickparts"))
    pair = Suspect(("request_model", "tenant"), ("gpt-4.1", "quickparts"), 1.0, "mix", 0.8, 0.7, 3, 21, None, None, Evidence("leaves"))
    found = _finding("quality:groundedness", 0, pair, replace(tenant, explained_share=0.8))
    stepped = replace(found, regression=replace(found.regression, anchor="tenant=quickparts", share_step=(0.05, 0.18)))
    assert _leads(stepped_tenants_first([stepped])) == [("quality:groundedness", "tenant=quickparts")]
    weak = replace(stepped, attribution=replace(stepped.attribution, suspects=(pair, replace(tenant, explained_share=0.4))))
    assert _leads(stepped_tenants_first([weak, found])) == [("quality:groundedness", "request_model=gpt-4.1 & tenant=quickparts")] * 2
