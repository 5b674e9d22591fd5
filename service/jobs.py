"""RQ job functions: scoring, webhook delivery, and the reconciler that makes sure nothing is lost.

The worker binds the process ``Runtime`` (settings, database, Redis, loaded model; see
``service.runtime.bind_process_runtime``) before it starts, so forked work horses inherit it. RQ stores
these functions' dotted paths in queued jobs (``service.queueing.JOB_PATHS``): keep their names.
Exceptions propagate into RQ's failed-job registry; the scoring job's failure callback routes the
comments it had claimed to human review.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import redis
from rq import get_current_job
from rq.job import Job
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from classifier.comment import Comment as ClassifierComment
from classifier.text import Normalized
from service import metrics, queueing, webhooks
from service.db import PENDING, ApiKey, Comment, WebhookDelivery, utcnow
from service.keys import server_secret, webhook_secret
from service.languages import detect_language
from service.policy import HELD, UNSCORED, Verdict, apply_policy, uncertainty
from service.rules import CommentFacts
from service.runtime import Runtime, process_runtime
from service.scoring import WORKER_MODEL_REFRESH_SECONDS
from service.sites import SiteConfig, author_history
from service.store import (
    WEBHOOK_VISIBILITY,
    Change,
    StatusUpdate,
    change_status,
    change_statuses,
    mark_enqueued,
    pending_comments,
    stale_pending_ids,
)

logger = logging.getLogger(__name__)


def to_classifier_comment(comment: Comment) -> ClassifierComment:
    return ClassifierComment(
        text=comment.text,
        name=comment.author_name or "",
        email=comment.author_email or "",
        url=comment.author_url or "",
        language=comment.language,
    )


# --- scoring -----------------------------------------------------------------------------------


def score_inbox() -> int:
    """Drain the scoring inbox in batches; returns how many verdicts this job recorded."""
    runtime = process_runtime()
    settings = runtime.settings
    job = get_current_job()
    queueing.clear_drain_flag(runtime.redis, settings)
    if os.getpid() == runtime.pid:
        # In a forked work horse the parent keeps the model fresh; here we are that process. Not at
        # every job: asking which version is active is a round trip, and under load there is a job
        # every few milliseconds. A promotion still reaches this process within a second.
        runtime.models.maybe_refresh(WORKER_MODEL_REFRESH_SECONDS)
    started = time.monotonic()
    deadline = started + queueing.SCORE_JOB_TIMEOUT / 2
    inbox = queueing.InboxClaims(runtime.redis, settings, started + settings.score_linger_seconds)
    # A retried job first finishes the batch its failed attempt had claimed.
    claimed: list[str] = list(job.meta.get("claimed", [])) if job else []
    decided = 0
    while time.monotonic() < deadline:
        if not claimed:
            claimed = inbox.next_batch()
            if not claimed:
                return decided
            _remember_claim(job, claimed)
        decided += score_comments(runtime, claimed)
        # The claim stays in the job's meta until the next one replaces it: a retry or the failure
        # callback finds those comments decided and skips them, so clearing it would only cost a
        # round trip per batch.
        claimed = []
    # Out of time with work left: hand the rest to a fresh job rather than hit the job timeout.
    queueing.enqueue_drain(runtime.redis, trigger=f"continue-{job.id if job else 'direct'}")
    return decided


def _remember_claim(job: Job | None, comment_ids: list[str]) -> None:
    if job is not None:
        job.meta["claimed"] = comment_ids
        job.save_meta()


def score_comments(runtime: Runtime, comment_ids: Sequence[str]) -> int:
    """Score the still-pending comments among ``comment_ids`` with one model call; record verdicts."""
    started = time.perf_counter()
    with runtime.session() as session:
        comments = pending_comments(session, comment_ids)
        if not comments:
            return 0
        runtime.sites.refresh(session)
        batch = runtime.models.score([to_classifier_comment(c) for c in comments])
        decided = []
        for index, comment in enumerate(comments):
            score = batch.scores[index] if batch.scores is not None else None
            values = score.values if score is not None else None
            site = runtime.sites.get(comment.site_id)
            language = detect_language(comment.text)
            normalized = score.normalized if score is not None else None
            verdict = site_verdict(session, site, comment, values, language, normalized)
            update_to = StatusUpdate(
                status=verdict.status,
                reason=verdict.reason,
                actor=f"model:{batch.model_version}" if score is not None else "system:scorer",
                scores=values,
                explanations=[reason.to_dict() for reason in score.reasons] if score is not None else None,
                model_version=batch.model_version if score is not None else None,
                uncertainty=uncertainty(values, site.thresholds),
                rule_hits=[hit.to_dict() for hit in verdict.hits],
                language=language,
            )
            decided.append((comment, update_to))
        changes = record_verdicts(session, decided)
        for change in changes:
            _log_verdict(change.comment, change.comment.scores, batch.model_version, batch.error)
        session.commit()
    metrics.SCORING_BATCH_SIZE.observe(len(comments))
    metrics.SCORING_BATCH_DURATION.observe(time.perf_counter() - started)
    _observe_verdicts(changes)
    after_commit(runtime, changes)
    return len(changes)


def record_verdicts(session: Session, decided: Sequence[tuple[Comment, StatusUpdate]]) -> list[Change]:
    """Write the verdicts of still-pending comments (compare-and-set each); the caller commits.

    A batch goes out as one ``executemany`` (:func:`change_statuses`). Should another writer have
    decided one of its comments first (a moderator, a re-enqueued copy of the batch), the batch's
    UPDATEs are rolled back and the compare-and-set, comment by comment, tells which one was taken.
    """
    if len(decided) > 1:
        changes = change_statuses(session, decided, expected_status=PENDING)
        if changes is not None:
            return changes
        session.rollback()
    recorded = []
    for comment, update_to in decided:
        change = change_status(session, comment, update_to, expected_status=PENDING)
        if change is not None:
            recorded.append(change)
    return recorded


def _observe_verdicts(changes: Sequence[Any]) -> None:
    """Count the committed verdicts and their latency from arrival (the comments are still loaded)."""
    for change in changes:
        comment = change.comment
        metrics.observe_verdict(
            comment.site_id, comment.status, comment.reason, comment.received_at, comment.decided_at
        )


def site_verdict(
    session: Session,
    site: SiteConfig,
    comment: Comment,
    scores: dict[str, float] | None,
    language: str | None,
    normalized: Normalized | None = None,
) -> Verdict:
    """The policy's verdict with the comment's site rules and thresholds."""
    facts = CommentFacts(
        text=comment.text,
        email=comment.author_email or "",
        ip=comment.author_ip,
        language=language,
        history=author_history(session, site, comment.author_email or ""),
        # The text the model normalised, reused for the word lists (normalising is most of their cost).
        normalized=normalized,
    )
    return apply_policy(scores, comment.text, site.thresholds, site.rules.evaluate(facts))


def preview_verdict(
    runtime: Runtime, site_id: int | None, comment: Comment
) -> tuple[Verdict, dict[str, Any]]:
    """What ``comment`` (unsaved) would get on the site now: the "try it" box. Nothing is stored."""
    with runtime.session() as session:
        runtime.sites.refresh(session)
        site = runtime.sites.get(site_id)
        batch = runtime.models.score_synchronously([to_classifier_comment(comment)])
        score = batch.scores[0] if batch.scores else None
        values = score.values if score is not None else None
        language = detect_language(comment.text)
        verdict = site_verdict(session, site, comment, values, language)
    return verdict, {"scores": values or {}, "language": language, "model_version": batch.model_version}


def _log_verdict(
    comment: Comment, values: dict[str, float] | None, model: str | None, error: str | None
) -> None:
    if values is None:
        logger.warning(
            "comment=%s status=%s reason=%s error=%s", comment.id, comment.status, comment.reason, error
        )
    else:
        logger.info(
            "comment=%s status=%s reason=%s spam=%.3f toxicity=%.3f model=%s",
            comment.id,
            comment.status,
            comment.reason,
            values.get("spam", float("nan")),
            values.get("toxicity", float("nan")),
            model,
        )


def after_commit(runtime: Runtime, changes: Sequence[Any]) -> None:
    """Tell waiting API requests and start webhook deliveries. Best effort: the outbox has it all."""
    if not changes:
        return
    try:
        queueing.publish_verdicts(
            runtime.redis, runtime.settings, {c.comment.id: c.comment.status for c in changes}
        )
        for change in changes:
            if change.delivery is not None:
                queueing.enqueue_webhook(runtime.redis, change.delivery.id, attempt=0)
    except redis.RedisError as error:
        logger.warning("could not notify after verdicts error=%s (the reconciler will deliver)", error)


def hold_claimed_comments(job: Job, connection: redis.Redis, *exc_info: Any) -> None:
    """RQ failure callback: once retries are spent, comments this job claimed go to a human."""
    if job.retries_left:
        return
    claimed = job.meta.get("claimed") or []
    if not claimed:
        return
    hold_unscored(process_runtime(), claimed, actor="system:failed-job")


def hold_unscored(runtime: Runtime, comment_ids: Sequence[str], actor: str) -> int:
    with runtime.session() as session:
        held = StatusUpdate(HELD, UNSCORED, actor=actor)
        changes = record_verdicts(session, [(c, held) for c in pending_comments(session, comment_ids)])
        session.commit()
    _observe_verdicts(changes)
    logger.warning("held unscored comments count=%d actor=%s", len(changes), actor)
    after_commit(runtime, changes)
    return len(changes)


# --- webhooks ----------------------------------------------------------------------------------


def deliver_webhook(delivery_id: int) -> str:
    """Try one delivery; on failure schedule the next attempt in the outbox. Never raises for HTTP."""
    runtime = process_runtime()
    with runtime.session() as session:
        delivery = session.get(WebhookDelivery, delivery_id)
        if delivery is None or delivery.state != "pending":
            return "skipped"
        api_key = session.get(ApiKey, delivery.api_key_id)
        body = webhooks.encode_body(delivery.payload)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "moderation-service-webhook/1",
            webhooks.EVENT_HEADER: delivery.event,
            webhooks.DELIVERY_HEADER: str(delivery.id),
        }
        signing_secret = webhook_secret(api_key, server_secret(runtime.settings)) if api_key else None
        if signing_secret:
            headers[webhooks.SIGNATURE_HEADER] = webhooks.signature_header(signing_secret, body)
        error = _post(delivery.url, body, headers, runtime.settings.webhook_timeout_seconds)
        delivery.attempts += 1
        if error is None:
            delivery.state = "delivered"
            delivery.delivered_at = utcnow()
            delivery.last_error = None
        else:
            delay = webhooks.next_delay(delivery.attempts)
            delivery.last_error = error[:500]
            if delay is None:
                delivery.state = "dead"
            else:
                delivery.next_attempt_at = utcnow() + delay
        session.commit()
        metrics.WEBHOOK_DELIVERIES.labels(_delivery_outcome(delivery.state)).inc()
        if delivery.attempts > 1:
            metrics.WEBHOOK_RETRIES.inc()
        logger.info(
            "webhook delivery=%s comment=%s state=%s attempts=%d error=%s",
            delivery.id,
            delivery.comment_id,
            delivery.state,
            delivery.attempts,
            error,
        )
        return delivery.state


def _delivery_outcome(state: str) -> str:
    return "failed" if state == "pending" else state  # pending again: it failed and will be retried


#: One connection pool per worker process, made in that process (a pool must not cross a fork).
_webhook_clients: dict[int, httpx.Client] = {}


def _webhook_client() -> httpx.Client:
    """The process's webhook client: ``httpx.post`` builds a client (SSL context included) per call, about
    50 ms of CPU, which held one worker to about 10 deliveries a second (tests/test_hosts.py)."""
    pid = os.getpid()
    client = _webhook_clients.get(pid)
    if client is None:
        _webhook_clients.clear()  # a parent's client, inherited across fork, is never used here
        client = _webhook_clients[pid] = httpx.Client(follow_redirects=False)
    return client


def _post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> str | None:
    try:
        response = _webhook_client().post(url, content=body, headers=headers, timeout=timeout)
    except httpx.HTTPError as error:
        return f"{type(error).__name__}: {error}"
    if 200 <= response.status_code < 300:
        return None
    return f"HTTP {response.status_code}"


# --- reconciler --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReconcileReport:
    comments_requeued: int
    webhooks_requeued: int


def reconcile(runtime: Runtime, limit: int = 1000) -> ReconcileReport:
    """Re-enqueue pending comments whose job was lost, and webhook attempts that are due.

    Raises ``redis.RedisError`` when Redis is down; the caller just tries again later. The database
    is only updated after the enqueue succeeded, so a failure here loses nothing.
    """
    settings = runtime.settings
    now = utcnow()
    with runtime.session() as session:
        stale = stale_pending_ids(session, now - timedelta(seconds=settings.reconcile_after_seconds), limit)
        if stale:
            queueing.enqueue_scoring(runtime.redis, settings, stale)
            mark_enqueued(session, stale)
        due = list(
            session.execute(
                select(WebhookDelivery.id, WebhookDelivery.attempts)
                .where(WebhookDelivery.state == "pending", WebhookDelivery.next_attempt_at <= now)
                .limit(limit)
            )
        )
        for delivery_id, attempts in due:
            queueing.enqueue_webhook(runtime.redis, delivery_id, attempt=attempts)
        if due:
            session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id.in_([row[0] for row in due]))
                .values(next_attempt_at=now + WEBHOOK_VISIBILITY)
                .execution_options(synchronize_session=False)
            )
        session.commit()
    metrics.RECONCILER_REQUEUES.labels("comment").inc(len(stale))
    metrics.RECONCILER_REQUEUES.labels("webhook").inc(len(due))
    if stale or due:
        logger.info("reconciled comments=%d webhooks=%d", len(stale), len(due))
    return ReconcileReport(len(stale), len(due))
