"""The program pages' shared parts: their texts (German and English), which rule-set version is
live, scheduled, past or a draft, and the plain-language descriptions of rules and promotions.

The pages themselves: :mod:`admin.web.program_pages` (programs, one program's settings),
:mod:`admin.web.rule_set_pages` (a version's rules, the draft editors, the simulator),
:mod:`admin.web.reward_pages` (one reward's form).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

import msgspec

from admin.web.shell import Formats
from loyalty.services.rule_documents import (
    AudienceDocument,
    EarningRuleDocument,
    LocalizedText,
    PromotionDocument,
    RuleSetDocument,
    ScopeDocument,
)
from loyalty.services.rule_sets import RuleSetSummary

TEXTS: Final[Mapping[str, Mapping[str, str]]] = {
    "de": {
        # the programs list
        "programs_title": "Programme",
        "programs_lead": "Die Treueprogramme Ihres Unternehmens: Regeln, Stufen, Aktionen und "
        "Prämien.",
        "col_name": "Name",
        "col_code": "Kürzel",
        "col_currency": "Währung",
        "col_live": "Gültige Version",
        "col_drafts": "Entwürfe",
        "col_scheduled": "Geplant",
        "no_programs": "Noch keine Programme.",
        "no_live": "keine",
        "new_program": "Neues Programm",
        "new_program_lead": "Es beginnt mit Version 1: ein Punkt je 1,00 Umsatz.",
        "code": "Kürzel",
        "code_hint": "Kleinbuchstaben, Ziffern und Bindestriche",
        "name": "Name",
        "currency": "Währung",
        "timezone": "Zeitzone",
        "expiry": "Verfall der Punkte",
        "expiry_never": "nie",
        "expiry_after_days": "nach Tagen",
        "expiry_end_of_month_after_months": "am Monatsende nach Monaten",
        "expiry_value": "Tage bzw. Monate",
        "expiry_text_never": "Punkte verfallen nicht.",
        "expiry_text_after_days": "Punkte verfallen {value} Tage nach dem Sammeln.",
        "expiry_text_end_of_month_after_months": "Punkte verfallen am Ende des Monats, "
        "{value} Monate nach dem Sammeln.",
        "create": "Anlegen",
        "open": "Öffnen",
        # one program
        "program_facts": "Eckdaten",
        "settings": "Einstellungen",
        "settings_lead": "Kürzel, Währung, Zeitzone und Verfall bleiben fest: Bereits "
        "gesammelte Punkte hängen davon ab.",
        "name_de": "Name (Deutsch)",
        "name_en": "Name (Englisch)",
        "description_de": "Beschreibung (Deutsch)",
        "description_en": "Beschreibung (Englisch)",
        "point_value": "Wert eines Punktes",
        "point_value_hint": "in {currency}, bis zu 6 Nachkommastellen (0,01 = ein Cent)",
        "rounding": "Rundung",
        "rounding_down": "abrunden",
        "rounding_half_up": "kaufmännisch",
        "rounding_up": "aufrunden",
        "rounding_inherit": "wie das Programm",
        "hold_timeout": "Reservierung läuft ab nach (Sekunden)",
        "static_redeem_cap": "Höchstens einlösbar ohne Wallet-Code (Punkte je Einkauf)",
        "redeemed_on_refund": "Eingelöste Punkte bei Erstattung",
        "refund_return": "zurückgeben",
        "refund_keep": "einbehalten",
        "referral_bonus": "Empfehlungsbonus (Punkte für beide)",
        "feedback_interval": "Zufriedenheitsfrage höchstens alle … Tage",
        "adjustment_threshold": "Freigabe durch zweite Person ab (Punkte)",
        "adjustment_limits": "Grenzen für Korrekturen je Rolle (JSON)",
        "adjustment_limits_hint": "Rolle → höchstens Punkte je Korrektur (null: ohne Grenze; "
        "fehlende Rolle: darf nicht korrigieren); null insgesamt: die Voreinstellung.",
        "adjustment_limits_in_force": "Es gilt",
        "adjustment_limits_read": "Grenzen für Korrekturen je Rolle",
        "card_colours": "Kartenfarben",
        "card_colours_lead": "Text und Akzent müssen auf dem Hintergrund lesbar sein "
        "(WCAG-Kontrast mindestens 4,5 bzw. 3).",
        "card_background": "Hintergrund",
        "card_foreground": "Text",
        "card_accent": "Akzent",
        "contrast_text": "Kontrast Text",
        "contrast_accent": "Kontrast Akzent",
        "contrast_ok": "gut lesbar",
        "contrast_low": "zu schwach",
        "card_sample": "Musterkarte",
        "versions": "Regelversionen",
        "versions_lead": "Regeln ändern Sie in einem Entwurf. Die Vorschau und der Simulator "
        "zeigen die Wirkung; veröffentlicht gilt eine Version ab einem Zeitpunkt und bleibt "
        "danach unverändert.",
        "version": "Version",
        "version_n": "Version {n}",
        "status": "Status",
        "state_live": "gültig",
        "state_scheduled": "geplant",
        "state_past": "abgelöst",
        "state_draft": "Entwurf",
        "effective_from": "Gültig ab",
        "based_on": "Basiert auf",
        "created": "Angelegt",
        "published": "Veröffentlicht",
        "by": "von",
        "new_draft": "Neuer Entwurf",
        "new_draft_lead": "Eine Kopie der gültigen Version, die Sie frei bearbeiten.",
        "new_draft_from": "Neuer Entwurf auf Basis dieser Version",
        "rewards": "Prämien",
        "rewards_lead": "Wofür Mitglieder ihre Punkte einlösen.",
        "no_rewards": "Noch keine Prämien.",
        "new_reward": "Neue Prämie",
        "edit": "Bearbeiten",
        "view": "Ansehen",
        "archive": "Archivieren",
        "archive_confirm": "Prämie „{name}“ archivieren? Mitglieder sehen sie dann nicht mehr.",
        "archived": "archiviert",
        "active": "aktiv",
        "kind": "Art",
        "cost": "Preis",
        "stock_left": "Bestand",
        "redeemed": "eingelöst",
        "unlimited": "unbegrenzt",
        "reward_kind_amount_off": "Betrag",
        "reward_kind_percent_off": "Prozent",
        "reward_kind_free_item": "Gratisartikel",
        "reward_kind_points_as_money": "Punkte als Geld",
        "cost_steps": "{points} P = {money}",
        # a rule-set version
        "rule_set_title": "{program} · Version {n}",
        "back_to_program": "Zurück zum Programm",
        "draft_notice": "Entwurf: Änderungen wirken erst nach dem Veröffentlichen.",
        "published_notice": "Veröffentlicht: Diese Version ändert sich nicht mehr.",
        "problems": "Das verhindert die Veröffentlichung",
        "no_problems": "Der Entwurf kann veröffentlicht werden.",
        "tiers": "Stufen",
        "no_tiers": "Dieses Programm hat keine Stufen.",
        "tier_basis": "Grundlage",
        "basis_points": "gesammelte Punkte",
        "basis_spend": "Umsatz",
        "tier_window": "Zeitraum",
        "window_calendar_year": "Kalenderjahr",
        "window_anniversary": "Mitgliedsjahr",
        "window_rolling_12_months": "gleitende 12 Monate",
        "tier_downgrade": "Abstufung",
        "downgrade_one_step": "um eine Stufe",
        "downgrade_to_supported": "auf die erreichte Stufe",
        "grace_days": "Kulanzfrist (Tage)",
        "threshold": "Schwelle",
        "threshold_points": "Schwelle (Punkte)",
        "threshold_spend": "Schwelle (Umsatz in {currency})",
        "multiplier": "Multiplikator",
        "perks": "Vorteile",
        "perks_de": "Vorteile (Deutsch)",
        "perks_en": "Vorteile (Englisch)",
        "add_level": "Stufe hinzufügen",
        "remove": "Entfernen",
        "save_tiers": "Stufen speichern",
        "remove_tiers": "Stufen entfernen",
        "remove_tiers_confirm": "Die Stufen aus dem Entwurf entfernen?",
        "add_tiers": "Stufen einführen",
        "earning_rules": "Sammelregeln",
        "no_earning_rules": "Keine Sammelregeln: Einkäufe bringen keine Punkte.",
        "promotions": "Aktionen",
        "no_promotions": "Keine Aktionen.",
        "caps": "Obergrenzen",
        "no_caps": "Keine Obergrenzen.",
        "cap_order": "je Einkauf",
        "cap_day": "je Mitglied und Tag",
        "cap_week": "je Mitglied und Woche",
        "cap_month": "je Mitglied und Monat",
        "cap_line": "höchstens {points} {period}",
        "save_caps": "Obergrenzen speichern",
        "caps_hint": "Leer = keine Grenze.",
        "rule_kind_spend": "Umsatz",
        "rule_kind_item": "je Artikel",
        "rule_kind_visit": "je Besuch",
        "rule_kind_min_spend_bonus": "Bonus ab Einkaufswert",
        "rule_kind_multiplier": "Multiplikator",
        "promotion_kind_multiplier": "Multiplikator",
        "promotion_kind_bonus": "Bonuspunkte",
        "describe_spend": "{points} P je {amount} Umsatz",
        "describe_item": "{points} P je Stück",
        "describe_visit": "{points} P je Einkauf",
        "describe_min_spend_bonus": "{points} P ab {amount} Einkaufswert",
        "describe_multiplier": "Punkte × {multiplier}",
        "describe_bonus": "+{points} P einmal je Einkauf",
        "from_spend": "ab {amount}",
        "only_categories": "Kategorien: {items}",
        "only_skus": "Artikel: {items}",
        "only_tiers": "nur Stufen: {items}",
        "only_segments": "nur Segmente: {items}",
        "only_locations": "nur Filialen: {items}",
        "max_per_order": "höchstens {points} P je Einkauf",
        "own_rounding": "Rundung: {rounding}",
        "runs": "{start} bis {end}",
        "on_weekdays": "an: {days}",
        "between_hours": "{start}–{end} Uhr",
        "per_member_limit": "höchstens {n}× je Mitglied",
        "budget": "Budget {points} P",
        "weekday_1": "Mo",
        "weekday_2": "Di",
        "weekday_3": "Mi",
        "weekday_4": "Do",
        "weekday_5": "Fr",
        "weekday_6": "Sa",
        "weekday_7": "So",
        "edit_rule": "Bearbeiten",
        "new_rule": "Neue Sammelregel",
        "new_promotion": "Neue Aktion",
        "delete": "Löschen",
        "delete_rule_confirm": "„{code}“ aus dem Entwurf löschen?",
        "points": "Punkte",
        "per_amount": "je Umsatz ({currency})",
        "min_spend": "Mindestumsatz ({currency})",
        "categories": "Kategorien (Komma-getrennt)",
        "skus": "Artikelnummern (Komma-getrennt)",
        "audience_tiers": "nur für Stufen (Kürzel, Komma-getrennt)",
        "audience_segments": "nur für Segmente",
        "audience_locations": "nur in Filialen",
        "max_points_per_order": "höchstens Punkte je Einkauf",
        "starts_at": "Beginn (Ihre Ortszeit)",
        "ends_at": "Ende (Ihre Ortszeit)",
        "bonus_points": "Bonuspunkte",
        "weekdays": "Wochentage (keiner = jeden Tag)",
        "hours_start": "von (Uhrzeit)",
        "hours_end": "bis (Uhrzeit)",
        "per_member_limit_field": "höchstens je Mitglied (Einkäufe)",
        "budget_points": "Budget (Punkte insgesamt)",
        "json_fallback": "Vollständige Definition (JSON)",
        "json_hint": "Alle Felder, auch die oben nicht aufgeführten; der Server prüft sie.",
        "save_json": "JSON speichern",
        "delete_draft": "Entwurf löschen",
        "delete_draft_confirm": "Diesen Entwurf endgültig löschen?",
        "publish": "Veröffentlichen",
        "publish_lead": "Ab dem Zeitpunkt berechnet diese Version alle Einkäufe. Frühere "
        "Einkäufe behalten ihre Punkte.",
        "publish_from": "Gültig ab (leer = sofort; Ihre Ortszeit)",
        "publish_confirm": "Version {n} veröffentlichen? Danach lässt sie sich nicht mehr ändern.",
        "tier_level_code": "Kürzel",
        # the simulator
        "simulator": "Simulator",
        "simulator_lead": "Ein Beispiel-Einkauf, berechnet mit dieser Version und mit der "
        "gültigen, nebeneinander.",
        "basket": "Warenkorb",
        "sku": "Artikel",
        "category": "Kategorie",
        "quantity": "Menge",
        "unit_price": "Stückpreis ({currency})",
        "add_line": "Zeile hinzufügen",
        "location": "Filiale (optional)",
        "who": "Für wen",
        "as_tier": "Stufe",
        "as_member": "Mitglied (Nummer)",
        "no_tier": "keine Stufe",
        "segments": "Segmente (optional, Komma-getrennt)",
        "when": "Zeitpunkt (leer = jetzt; Ihre Ortszeit)",
        "calculate": "Berechnen",
        "live_column": "Gültig (Version {n})",
        "draft_column": "Diese Version ({n})",
        "explanation": "Begründung",
        "difference": "Unterschied",
        "total": "Summe",
        "qualifying_spend": "Qualifizierender Umsatz",
        "tier_live": "Stufe heute",
        "tier_draft": "Stufe mit dieser Version",
        "member_total": "Qualifizierende Summe des Mitglieds: {total}",
        "tier_basis_differs": "Die Version zählt Stufen anders; die heutige Stufe wird übernommen.",
        "no_rules_live": "Zu diesem Zeitpunkt gilt keine Version.",
        "source_rule": "Regel",
        "source_tier": "Stufe",
        "source_promotion": "Aktion",
        "source_cap": "Obergrenze",
        "points_unit": "P",
        "same": "gleich",
        "simulation": "Rückblick auf echte Einkäufe",
        "simulation_lead": "Die Einkäufe der letzten Tage, neu berechnet mit dieser Version "
        "(mit der Stufe und dem Zeitpunkt, die sie hatten), verglichen mit den vergebenen "
        "Punkten.",
        "days": "Tage",
        "simulate": "Neu berechnen",
        "orders": "Einkäufe",
        "members": "Mitglieder",
        "points_issued": "Vergeben",
        "points_with_draft": "Mit dieser Version",
        "orders_more": "Einkäufe mit mehr Punkten",
        "orders_less": "Einkäufe mit weniger Punkten",
        "liability_difference": "Unterschied im Punktewert",
        "line": "Posten",
        "now_points": "bisher",
        "draft_points": "mit dieser Version",
        # one reward
        "reward_title_new": "Neue Prämie",
        "reward_title": "Prämie „{name}“",
        "reward_lead": "Feste Prämien kosten einen Punktepreis; „Punkte als Geld“ zieht je "
        "Schritt einen Betrag ab.",
        "description": "Beschreibung",
        "points_cost": "Preis (Punkte)",
        "amount_off": "Rabatt ({currency})",
        "percent_off": "Rabatt (%)",
        "max_discount": "höchstens ({currency})",
        "reward_sku": "Artikelnummer des Gratisartikels",
        "points_per_step": "Punkte je Schritt",
        "money_per_step": "Betrag je Schritt ({currency})",
        "min_points": "mindestens Punkte",
        "max_points": "höchstens Punkte",
        "reward_tiers": "nur für Stufen (Kürzel, Komma-getrennt)",
        "reward_limit": "höchstens je Mitglied",
        "stock": "Bestand (leer = unbegrenzt)",
        "valid_from": "gültig ab (Ihre Ortszeit)",
        "valid_until": "gültig bis (Ihre Ortszeit)",
        "reward_active": "aktiv (für Mitglieder sichtbar)",
    },
    "en": {
        "programs_title": "Programs",
        "programs_lead": "Your business's loyalty programs: rules, tiers, promotions and rewards.",
        "col_name": "Name",
        "col_code": "Code",
        "col_currency": "Currency",
        "col_live": "Live version",
        "col_drafts": "Drafts",
        "col_scheduled": "Scheduled",
        "no_programs": "No programs yet.",
        "no_live": "none",
        "new_program": "New program",
        "new_program_lead": "It starts with version 1: one point per 1.00 spent.",
        "code": "Code",
        "code_hint": "lower-case letters, digits and hyphens",
        "name": "Name",
        "currency": "Currency",
        "timezone": "Time zone",
        "expiry": "Points expiry",
        "expiry_never": "never",
        "expiry_after_days": "after days",
        "expiry_end_of_month_after_months": "at month end after months",
        "expiry_value": "Days or months",
        "expiry_text_never": "Points never expire.",
        "expiry_text_after_days": "Points expire {value} days after they are earned.",
        "expiry_text_end_of_month_after_months": "Points expire at the end of the month, "
        "{value} months after they are earned.",
        "create": "Create",
        "open": "Open",
        "program_facts": "Key facts",
        "settings": "Settings",
        "settings_lead": "Code, currency, time zone and expiry stay fixed: points already "
        "earned depend on them.",
        "name_de": "Name (German)",
        "name_en": "Name (English)",
        "description_de": "Description (German)",
        "description_en": "Description (English)",
        "point_value": "Value of one point",
        "point_value_hint": "in {currency}, up to 6 decimals (0.01 = one cent)",
        "rounding": "Rounding",
        "rounding_down": "down",
        "rounding_half_up": "half up",
        "rounding_up": "up",
        "rounding_inherit": "as the program",
        "hold_timeout": "Holds lapse after (seconds)",
        "static_redeem_cap": "Redeemable without a wallet code (points per sale)",
        "redeemed_on_refund": "Redeemed points on a refund",
        "refund_return": "give back",
        "refund_keep": "keep",
        "referral_bonus": "Referral bonus (points for both)",
        "feedback_interval": "Ask the satisfaction question at most every … days",
        "adjustment_threshold": "Second-person approval from (points)",
        "adjustment_limits": "Adjustment limits per role (JSON)",
        "adjustment_limits_hint": "role → most points per adjustment (null: no limit; a role "
        "left out may not adjust); null as a whole: the defaults.",
        "adjustment_limits_in_force": "In force",
        "adjustment_limits_read": "Adjustment limits per role",
        "card_colours": "Card colours",
        "card_colours_lead": "Text and accent must be legible on the background (WCAG "
        "contrast at least 4.5 and 3).",
        "card_background": "Background",
        "card_foreground": "Text",
        "card_accent": "Accent",
        "contrast_text": "Text contrast",
        "contrast_accent": "Accent contrast",
        "contrast_ok": "legible",
        "contrast_low": "too weak",
        "card_sample": "Sample card",
        "versions": "Rule versions",
        "versions_lead": "You change rules in a draft. The preview and the simulator show the "
        "effect; once published, a version applies from a moment on and never changes.",
        "version": "Version",
        "version_n": "Version {n}",
        "status": "Status",
        "state_live": "live",
        "state_scheduled": "scheduled",
        "state_past": "superseded",
        "state_draft": "draft",
        "effective_from": "Effective from",
        "based_on": "Based on",
        "created": "Created",
        "published": "Published",
        "by": "by",
        "new_draft": "New draft",
        "new_draft_lead": "A copy of the live version for you to edit.",
        "new_draft_from": "New draft based on this version",
        "rewards": "Rewards",
        "rewards_lead": "What members spend their points on.",
        "no_rewards": "No rewards yet.",
        "new_reward": "New reward",
        "edit": "Edit",
        "view": "View",
        "archive": "Archive",
        "archive_confirm": "Archive the reward “{name}”? Members will no longer see it.",
        "archived": "archived",
        "active": "active",
        "kind": "Kind",
        "cost": "Price",
        "stock_left": "Stock",
        "redeemed": "redeemed",
        "unlimited": "unlimited",
        "reward_kind_amount_off": "amount off",
        "reward_kind_percent_off": "percent off",
        "reward_kind_free_item": "free item",
        "reward_kind_points_as_money": "points as money",
        "cost_steps": "{points} pts = {money}",
        "rule_set_title": "{program} · version {n}",
        "back_to_program": "Back to the program",
        "draft_notice": "Draft: changes take effect only once it is published.",
        "published_notice": "Published: this version no longer changes.",
        "problems": "What stops publishing",
        "no_problems": "The draft can be published.",
        "tiers": "Tiers",
        "no_tiers": "This program has no tiers.",
        "tier_basis": "Basis",
        "basis_points": "points earned",
        "basis_spend": "spend",
        "tier_window": "Window",
        "window_calendar_year": "calendar year",
        "window_anniversary": "membership year",
        "window_rolling_12_months": "rolling 12 months",
        "tier_downgrade": "Downgrade",
        "downgrade_one_step": "one step",
        "downgrade_to_supported": "to the level reached",
        "grace_days": "Grace period (days)",
        "threshold": "Threshold",
        "threshold_points": "Threshold (points)",
        "threshold_spend": "Threshold (spend in {currency})",
        "multiplier": "Multiplier",
        "perks": "Perks",
        "perks_de": "Perks (German)",
        "perks_en": "Perks (English)",
        "add_level": "Add a level",
        "remove": "Remove",
        "save_tiers": "Save tiers",
        "remove_tiers": "Remove tiers",
        "remove_tiers_confirm": "Remove the tiers from the draft?",
        "add_tiers": "Introduce tiers",
        "earning_rules": "Earning rules",
        "no_earning_rules": "No earning rules: purchases earn no points.",
        "promotions": "Promotions",
        "no_promotions": "No promotions.",
        "caps": "Caps",
        "no_caps": "No caps.",
        "cap_order": "per order",
        "cap_day": "per member and day",
        "cap_week": "per member and week",
        "cap_month": "per member and month",
        "cap_line": "at most {points} {period}",
        "save_caps": "Save caps",
        "caps_hint": "Empty = no cap.",
        "rule_kind_spend": "spend",
        "rule_kind_item": "per item",
        "rule_kind_visit": "per visit",
        "rule_kind_min_spend_bonus": "minimum-spend bonus",
        "rule_kind_multiplier": "multiplier",
        "promotion_kind_multiplier": "multiplier",
        "promotion_kind_bonus": "bonus points",
        "describe_spend": "{points} pts per {amount} spent",
        "describe_item": "{points} pts per item",
        "describe_visit": "{points} pts per purchase",
        "describe_min_spend_bonus": "{points} pts from {amount} spent",
        "describe_multiplier": "points × {multiplier}",
        "describe_bonus": "+{points} pts once per purchase",
        "from_spend": "from {amount}",
        "only_categories": "categories: {items}",
        "only_skus": "items: {items}",
        "only_tiers": "tiers only: {items}",
        "only_segments": "segments only: {items}",
        "only_locations": "locations only: {items}",
        "max_per_order": "at most {points} pts per order",
        "own_rounding": "rounding: {rounding}",
        "runs": "{start} to {end}",
        "on_weekdays": "on: {days}",
        "between_hours": "{start}–{end}",
        "per_member_limit": "at most {n}× per member",
        "budget": "budget {points} pts",
        "weekday_1": "Mon",
        "weekday_2": "Tue",
        "weekday_3": "Wed",
        "weekday_4": "Thu",
        "weekday_5": "Fri",
        "weekday_6": "Sat",
        "weekday_7": "Sun",
        "edit_rule": "Edit",
        "new_rule": "New earning rule",
        "new_promotion": "New promotion",
        "delete": "Delete",
        "delete_rule_confirm": "Delete “{code}” from the draft?",
        "points": "Points",
        "per_amount": "per spend ({currency})",
        "min_spend": "Minimum spend ({currency})",
        "categories": "Categories (comma separated)",
        "skus": "SKUs (comma separated)",
        "audience_tiers": "Only for tiers (codes, comma separated)",
        "audience_segments": "Only for segments",
        "audience_locations": "Only at locations",
        "max_points_per_order": "At most points per order",
        "starts_at": "Starts (your local time)",
        "ends_at": "Ends (your local time)",
        "bonus_points": "Bonus points",
        "weekdays": "Weekdays (none = every day)",
        "hours_start": "from (time)",
        "hours_end": "until (time)",
        "per_member_limit_field": "At most per member (orders)",
        "budget_points": "Budget (points in total)",
        "json_fallback": "Full definition (JSON)",
        "json_hint": "Every field, including those not listed above; the server checks them.",
        "save_json": "Save JSON",
        "delete_draft": "Delete draft",
        "delete_draft_confirm": "Delete this draft for good?",
        "publish": "Publish",
        "publish_lead": "From that moment on this version prices every purchase. Earlier "
        "purchases keep their points.",
        "publish_from": "Effective from (empty = now; your local time)",
        "publish_confirm": "Publish version {n}? It can no longer change afterwards.",
        "tier_level_code": "Code",
        "simulator": "Simulator",
        "simulator_lead": "A sample purchase priced with this version and with the live one, "
        "side by side.",
        "basket": "Basket",
        "sku": "SKU",
        "category": "Category",
        "quantity": "Quantity",
        "unit_price": "Unit price ({currency})",
        "add_line": "Add a line",
        "location": "Location (optional)",
        "who": "For whom",
        "as_tier": "Tier",
        "as_member": "Member (number)",
        "no_tier": "no tier",
        "segments": "Segments (optional, comma separated)",
        "when": "When (empty = now; your local time)",
        "calculate": "Calculate",
        "live_column": "Live (version {n})",
        "draft_column": "This version ({n})",
        "explanation": "Explanation",
        "difference": "Difference",
        "total": "Total",
        "qualifying_spend": "Qualifying spend",
        "tier_live": "Tier today",
        "tier_draft": "Tier under this version",
        "member_total": "The member's qualifying total: {total}",
        "tier_basis_differs": "This version counts tiers differently; today's tier is kept.",
        "no_rules_live": "No version is in force at that moment.",
        "source_rule": "rule",
        "source_tier": "tier",
        "source_promotion": "promotion",
        "source_cap": "cap",
        "points_unit": "pts",
        "same": "same",
        "simulation": "Looking back at real purchases",
        "simulation_lead": "The last days' purchases priced again with this version (with the "
        "tier and time they had), compared with the points issued.",
        "days": "Days",
        "simulate": "Re-price",
        "orders": "Purchases",
        "members": "Members",
        "points_issued": "Issued",
        "points_with_draft": "With this version",
        "orders_more": "Purchases earning more",
        "orders_less": "Purchases earning less",
        "liability_difference": "Difference in points value",
        "line": "Item",
        "now_points": "so far",
        "draft_points": "with this version",
        "reward_title_new": "New reward",
        "reward_title": "Reward “{name}”",
        "reward_lead": "Fixed rewards cost a price in points; “points as money” takes an "
        "amount off per step.",
        "description": "Description",
        "points_cost": "Price (points)",
        "amount_off": "Amount off ({currency})",
        "percent_off": "Percent off",
        "max_discount": "At most ({currency})",
        "reward_sku": "SKU of the free item",
        "points_per_step": "Points per step",
        "money_per_step": "Amount per step ({currency})",
        "min_points": "At least points",
        "max_points": "At most points",
        "reward_tiers": "Only for tiers (codes, comma separated)",
        "reward_limit": "At most per member",
        "stock": "Stock (empty = unlimited)",
        "valid_from": "Valid from (your local time)",
        "valid_until": "Valid until (your local time)",
        "reward_active": "active (members see it)",
    },
}

#: The texts programs.js needs (the simulator's results are drawn in the browser).
SCRIPT_TEXT_KEYS: Final = (
    "live_column",
    "draft_column",
    "explanation",
    "difference",
    "total",
    "qualifying_spend",
    "tier_live",
    "tier_draft",
    "member_total",
    "tier_basis_differs",
    "no_rules_live",
    "no_tier",
    "source_rule",
    "source_tier",
    "source_promotion",
    "source_cap",
    "points_unit",
    "same",
    "orders",
    "members",
    "points_issued",
    "points_with_draft",
    "orders_more",
    "orders_less",
    "liability_difference",
    "line",
    "now_points",
    "draft_points",
)


def script_texts(texts: Mapping[str, str]) -> dict[str, str]:
    return {key: texts[key] for key in SCRIPT_TEXT_KEYS}


# -- versions ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VersionRow:
    summary: RuleSetSummary
    #: live, scheduled, past or draft.
    state: str

    @property
    def version(self) -> int:
        return self.summary.version


def version_rows(versions: Sequence[RuleSetSummary], now: datetime) -> list[VersionRow]:
    """Each version with its state at ``now``: the live one is what prices a purchase now (the
    latest effective_from not after now, as ``find_rules_in_force`` picks it)."""
    started = [
        v
        for v in versions
        if v.status == "published" and v.effective_from is not None and v.effective_from <= now
    ]
    live = max(started, key=lambda v: (v.effective_from, v.version), default=None)
    rows = []
    for summary in versions:
        if summary.status == "draft":
            state = "draft"
        elif live is not None and summary.version == live.version:
            state = "live"
        elif summary.effective_from is not None and summary.effective_from > now:
            state = "scheduled"
        else:
            state = "past"
        rows.append(VersionRow(summary, state))
    return rows


def live_version(rows: Sequence[VersionRow]) -> int | None:
    return next((row.version for row in rows if row.state == "live"), None)


# -- plain-language descriptions --------------------------------------------------------------


def localized(text: LocalizedText, language: str) -> str:
    """A localized text in the page's language, else the other one."""
    first, second = (text.de, text.en) if language == "de" else (text.en, text.de)
    return first or second


class Describer:
    """Rules, promotions and caps as a manager reads them, in the page's language."""

    def __init__(self, texts: Mapping[str, str], fmt: Formats, currency: str) -> None:
        self.t = texts
        self.fmt = fmt
        self.currency = currency

    def _money(self, minor: int) -> str:
        return self.fmt.money(minor, self.currency)

    def _points(self, points: int) -> str:
        return self.fmt.number(points)

    def multiplier(self, value: Decimal) -> str:
        return self.fmt.number(value.normalize())

    def rule(self, rule: EarningRuleDocument) -> list[str]:
        t = self.t
        kind = str(rule.kind)
        if kind == "multiplier":
            parts = [t["describe_multiplier"].format(multiplier=self.multiplier(rule.multiplier))]
        else:
            amount = rule.per_amount if kind == "spend" else rule.min_spend
            parts = [
                t["describe_" + kind].format(
                    points=self._points(rule.points), amount=self._money(amount)
                )
            ]
            if kind == "visit" and rule.min_spend:
                parts.append(t["from_spend"].format(amount=self._money(rule.min_spend)))
        parts += self._scope(rule.scope) + self._audience(rule.audience)
        if rule.max_points_per_order is not None:
            parts.append(t["max_per_order"].format(points=self._points(rule.max_points_per_order)))
        if rule.rounding is not None:
            parts.append(t["own_rounding"].format(rounding=t["rounding_" + rule.rounding]))
        return parts

    def promotion(self, promotion: PromotionDocument) -> list[str]:
        t = self.t
        if str(promotion.kind) == "multiplier":
            parts = [
                t["describe_multiplier"].format(multiplier=self.multiplier(promotion.multiplier))
            ]
        else:
            parts = [t["describe_bonus"].format(points=self._points(promotion.bonus_points))]
        parts.append(
            t["runs"].format(
                start=self.fmt.datetime(promotion.starts_at),
                end=self.fmt.datetime(promotion.ends_at),
            )
        )
        if promotion.weekdays:
            days = ", ".join(t[f"weekday_{day}"] for day in sorted(promotion.weekdays))
            parts.append(t["on_weekdays"].format(days=days))
        if promotion.hours is not None:
            parts.append(
                t["between_hours"].format(
                    start=promotion.hours.start.strftime("%H:%M"),
                    end=promotion.hours.end.strftime("%H:%M"),
                )
            )
        parts += self._scope(promotion.scope) + self._audience(promotion.audience)
        if promotion.per_member_limit is not None:
            parts.append(t["per_member_limit"].format(n=promotion.per_member_limit))
        if promotion.budget_points is not None:
            parts.append(t["budget"].format(points=self._points(promotion.budget_points)))
        return parts

    def threshold(self, value: int, basis: str) -> str:
        return self._money(value) if basis == "spend" else self._points(value)

    def cap(self, period: str, max_points: int) -> str:
        return self.t["cap_line"].format(
            points=self._points(max_points), period=self.t["cap_" + period]
        )

    def _scope(self, scope: ScopeDocument) -> list[str]:
        parts = []
        if scope.categories:
            parts.append(self.t["only_categories"].format(items=", ".join(scope.categories)))
        if scope.skus:
            parts.append(self.t["only_skus"].format(items=", ".join(scope.skus)))
        return parts

    def _audience(self, audience: AudienceDocument) -> list[str]:
        parts = []
        for name in ("tiers", "segments", "locations"):
            items = getattr(audience, name)
            if items:
                parts.append(self.t["only_" + name].format(items=", ".join(items)))
        return parts


def line_names(documents: Sequence[RuleSetDocument], language: str) -> dict[str, str]:
    """``"source:code"`` -> name, for the simulation's lines (which carry codes only); the
    first document wins (the version on the page, then the live one)."""
    names: dict[str, str] = {}
    for document in reversed(documents):
        for rule in document.earning_rules:
            names[f"rule:{rule.code}"] = localized(rule.name, language)
        for promotion in document.promotions:
            names[f"promotion:{promotion.code}"] = localized(promotion.name, language)
        if document.tiers is not None:
            for level in document.tiers.levels:
                names[f"tier:{level.code}"] = localized(level.name, language)
    return names


def decimal_text(value: Decimal) -> str:
    """A decimal as plain text without exponent or trailing zeros (10, 1.25)."""
    return format(value.normalize(), "f")


def definition_json(entry: Any) -> str:
    """An earning rule, promotion or reward as its full JSON definition (for the editors)."""
    return msgspec.json.format(msgspec.json.encode(entry), indent=2).decode()
