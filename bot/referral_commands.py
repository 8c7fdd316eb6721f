"""Operator commands for referrals, peer links, indicators and reports (`antam referral|peer|indicator|report`).

Each says what it did; bad input gets a readable message and exit 2, a refused action exit 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TextIO

from bot.bootstrap import Services
from bot.exit_codes import EXIT_FAILURE, EXIT_OK, EXIT_USAGE
from bot.redemption import redeem
from content.i18n import load_catalogs
from referrals import exports
from referrals.counting import ENGAGEMENTS, UNIQUE_INDICATORS
from referrals.indicators import IndicatorError, load_policy, set_package, set_target, set_threshold, targets_for
from referrals.peers import (
    PeerError,
    PeerUrls,
    bot_username,
    create_peer_link,
    list_peers,
    qr_image,
    set_active,
    stats_url,
)
from referrals.periods import Period, PeriodError
from referrals.redeeming import Place, Redemption
from referrals.report import Scope, ScopeKind
from referrals.reporting import ScopeError, build_report, province_scope, commune_scope
from referrals.published import peer_link_figures



class UsageError(Exception):
    """The command was given values it cannot use; exit 2."""


def _scope(services: Services, args: argparse.Namespace) -> Scope:
    communes = services.context.communes
    try:
        if getattr(args, "commune", None) is not None:
            return commune_scope(communes, args.commune)
        if getattr(args, "province", None) is not None:
            return province_scope(communes, args.province)
    except ScopeError as exc:
        raise UsageError(str(exc)) from exc
    return Scope(ScopeKind.ALL)


def _period(text: str) -> Period:
    try:
        return Period.parse(text)
    except PeriodError as exc:
        raise UsageError(str(exc)) from exc


async def run(services: Services, args: argparse.Namespace, out: TextIO) -> int:
    try:
        if args.command == "referral":
            return await _redeem(services, args, out)
        if args.command == "peer":
            return await _peer(services, args, out)
        if args.command == "indicator":
            return await _indicator(services, args, out)
        if args.command == "report":
            return await _report(services, args, out)
    except (UsageError, IndicatorError, PeerError, exports.ExportError) as exc:
        print(f"antam: {exc}", file=sys.stderr)
        return EXIT_USAGE
    raise AssertionError(f"unhandled command {args.command}")


_REDEEM_MESSAGES = {
    Redemption.MALFORMED: "Mã không đúng dạng: mã gồm 8 chữ và số, ví dụ 7KQ2-M9XA. / Not a referral code.",
    Redemption.UNKNOWN: "Không tìm thấy mã này. Kiểm tra lại từng ký tự. / No such code.",
    Redemption.ALREADY_USED: "Mã này đã được dùng ngày {day}. / This code was already used on {day}.",
    Redemption.CANCELLED: "Mã này đã bị hủy. / This code was cancelled.",
    Redemption.EXPIRED: "Mã này đã hết hạn ngày {day}. / This code expired on {day}.",
    Redemption.OTHER_PLACE: "Mã này dành cho {commune}, không phải nơi này. / This code is for {commune}.",
    Redemption.THROTTLED: (
        "Đã nhập sai quá nhiều lần; thử lại sau {minutes} phút. / Too many failed attempts; "
        "try again in {minutes} minutes."
    ),
}


async def _redeem(services: Services, args: argparse.Namespace, out: TextIO) -> int:
    scope = _scope(services, args)
    place = Place(commune=scope.code) if scope.kind is ScopeKind.COMMUNE else Place(province=scope.code)
    result = await redeem(services, args.code, place)
    kind = (
        load_catalogs().text("vi", f"service_type.{result.service_type}") if result.service_type else ""
    )
    if result.ok:
        print(f"Đã xác nhận mã: {kind}, ngày {result.day}. / Code redeemed: {result.service_type}.", file=out)
        return EXIT_OK
    commune = services.context.communes.get(result.commune) if result.commune is not None else None
    minutes = int(result.retry_after.total_seconds() // 60) + 1 if result.retry_after else 0
    message = _REDEEM_MESSAGES[result.outcome].format(
        day=result.day, commune=commune.label if commune else "?", minutes=minutes
    )
    print(f"antam: {message}", file=sys.stderr)
    return EXIT_USAGE if result.outcome is Redemption.MALFORMED else EXIT_FAILURE


def _base_url(services: Services) -> str:
    settings = services.settings
    return settings.public_url or f"http://{settings.http_host}:{settings.http_port}"


async def _peer(services: Services, args: argparse.Namespace, out: TextIO) -> int:
    communes = services.context.communes
    if args.action == "add":
        commune = communes.get(args.commune)
        if commune is None:
            raise UsageError(f"{args.commune} is not a 2025 commune code")
        try:
            username = bot_username(args.bot_username)
        except PeerError as exc:
            raise UsageError(f"--bot-username: {exc}") from exc
        async with services.db.transaction() as session:
            created = await create_peer_link(
                session, services.secrets.pepper, alias=args.alias, commune=commune.code,
                province=commune.province_code, now=services.clock.now(),
            )
        link = created.link
        folder = args.out or services.settings.data_dir / "peers"
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        print(f"Peer link '{link.alias}' for {commune.label}: code {link.code}", file=out)
        for name, url in PeerUrls.of(_base_url(services), link.code, username).by_name().items():
            png, svg = folder / f"peer-{link.code}-{name}.png", folder / f"peer-{link.code}-{name}.svg"
            png.write_bytes(qr_image(url, "png"))
            svg.write_bytes(qr_image(url, "svg", title=f"An Tâm {name}"))
            print(f"  {name}: {url}\n    QR: {png}  {svg}", file=out)
        if not username:
            print("  telegram: give --bot-username to print the t.me link and its QR code", file=out)
        print(
            f"  Counts page for the peer educator (small numbers hidden, never who): "
            f"{stats_url(_base_url(services), created.stats_token)}\n"
            "    Shown only this once and not stored: give it to the peer educator; anyone with it sees the counts.",
            file=out,
        )
        return EXIT_OK
    if args.action == "list":
        scope = _scope(services, args)
        async with services.db.transaction() as session:
            found = await list_peers(
                session,
                province=scope.code if scope.kind is ScopeKind.PROVINCE else None,
                commune=scope.code if scope.kind is ScopeKind.COMMUNE else None,
            )
        for link in found:
            place = communes.get(link.commune)
            state = "active" if link.active else "inactive"
            print(f"{link.code}  {state:8}  {link.created_on}  {place.label if place else link.commune}  {link.alias}", file=out)
        print(f"{len(found)} peer link(s).", file=out)
        return EXIT_OK
    if args.action in ("deactivate", "activate"):
        async with services.db.transaction() as session:
            link = await set_active(session, args.code, args.action == "activate")
        print(f"Peer link {link.code} ('{link.alias}') is now {'active' if link.active else 'inactive'}.", file=out)
        return EXIT_OK
    return await _peer_stats(services, args, out)


async def _peer_stats(services: Services, args: argparse.Namespace, out: TextIO) -> int:
    period = _period(args.period)
    async with services.db.transaction() as session:
        figures = await peer_link_figures(session, code=args.code, periods=[period])
    cells = [cell.text(figures.threshold) for cell in figures.cells[0]]
    print(
        f"Peer link {args.code}, {period.key}: reached {cells[0]}, referred {cells[1]}, redeemed {cells[2]}",
        file=out,
    )
    return EXIT_OK


async def _indicator(services: Services, args: argparse.Namespace, out: TextIO) -> int:
    now = services.clock.now()
    if args.action == "set":
        commune = services.context.communes.get(args.commune)
        if commune is None:
            raise UsageError(f"{args.commune} is not a 2025 commune code")
        if args.estimate is None and args.target is None:
            raise UsageError("give --estimate, --target or both")
        async with services.db.transaction() as session:
            target = await set_target(
                session,
                year=args.year,
                commune=commune.code,
                province=commune.province_code,
                indicator=args.indicator,
                estimate=args.estimate,
                target_percent=args.target,
                now=now,
            )
        estimate = "not set" if target.estimate is None else f"{target.estimate:,}"
        print(
            f"{commune.label}, {args.year}, {args.indicator}: estimate {estimate}, target {target.target_percent:g} %",
            file=out,
        )
        return EXIT_OK
    if args.action == "show":
        scope = _scope(services, args)
        async with services.db.transaction() as session:
            found = await targets_for(
                session,
                year=args.year,
                province=scope.code if scope.kind is ScopeKind.PROVINCE else None,
                commune=scope.code if scope.kind is ScopeKind.COMMUNE else None,
            )
        for (code, indicator), target in sorted(found.items()):
            place = services.context.communes.get(code)
            estimate = "-" if target.estimate is None else f"{target.estimate:,}"
            print(f"{place.label if place else code}  {indicator:9}  estimate {estimate:>8}  target {target.target_percent:g} %", file=out)
        print(f"{len(found)} target(s) for {args.year}; communes not listed use no estimate and a 70 % target.", file=out)
        return EXIT_OK
    async with services.db.transaction() as session:
        if args.action == "package":
            if args.kinds is not None:
                await set_package(session, args.kinds.split(","), now=now)
            policy = await load_policy(session)
            print(f"Minimum package (any one counts a person as reached): {', '.join(sorted(policy.package))}", file=out)
            return EXIT_OK
        if args.value is not None:
            await set_threshold(session, args.value, now=now)
        policy = await load_policy(session)
    print(f"Small-cell threshold: counts from 1 to {policy.threshold - 1} are shown as <{policy.threshold}", file=out)
    return EXIT_OK


async def _report(services: Services, args: argparse.Namespace, out: TextIO) -> int:
    period = _period(args.period)
    if args.scope_all:
        if args.commune is not None or args.province is not None:
            raise UsageError("give one of --commune, --province or all")
        scope = Scope(ScopeKind.ALL)
    elif args.commune is None and args.province is None and not args.all:
        raise UsageError("give one of --commune CODE, --province CODE or all")
    else:
        scope = _scope(services, args)
    mapping = exports.load_dhis2_mapping(args.dhis2_mapping) if args.dhis2_mapping else exports.DEFAULT_DHIS2_MAPPING
    async with services.db.transaction() as session:
        policy = await load_policy(session)
        report = await build_report(
            session,
            period=period,
            scope=scope,
            communes=services.context.communes,
            policy=policy,
            now=services.clock.now(),
            pack=services.context.pack,
        )
    catalogs = load_catalogs()
    data: bytes
    if args.format == "table":
        data = exports.to_table(report, catalogs, args.locale).encode("utf-8")
    elif args.format == "csv":
        data = exports.csv_bytes(report, catalogs, args.locale)
    elif args.format == "xlsx":
        if args.output is None and sys.stdout.isatty():
            raise UsageError("an XLSX report is a file: give --output FILE.xlsx")
        data = exports.to_xlsx(report, catalogs, args.locale)
    else:
        export = exports.to_dhis2(report, mapping)
        data = (json.dumps(export.payload, ensure_ascii=False, indent=2) + "\n").encode("utf-8")
        if export.hidden_omitted or export.communes_omitted:
            print(
                f"antam: {export.hidden_omitted} hidden value(s) (<{report.threshold} or *) and "
                f"{len(export.communes_omitted)} commune(s) without an org unit were left out",
                file=sys.stderr,
            )
    if args.output is not None:
        args.output.write_bytes(data)
        print(f"Report {period.key} ({args.format}) written to {args.output}", file=sys.stderr)
    else:
        out.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    return EXIT_OK
