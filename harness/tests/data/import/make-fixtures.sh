#!/usr/bin/env bash
# Writes the policy files the import tests and scenarios/import/ read, with tools that
# write these formats for real rather than with earshot's own code:
#
# - Registry.pol by Samba's PReg encoder (the one `samba-tool gpo` uses on domain
#   controllers; Debian package python3-samba), entry by entry as the Group Policy editor
#   writes them: a key-creation entry (empty value name, REG_NONE), DWORDs, `**del.`
#   deletions (REG_SZ, data a space), REG_SZ, REG_MULTI_SZ and REG_QWORD values.
# - .reg by Wine's `reg export` (UTF-16LE with a byte order mark, as reg.exe writes it),
#   after `reg add` of the values, in a throw-away Wine prefix (Debian package wine).
#
# Usage: harness/tests/data/import/make-fixtures.sh   (from anywhere; rewrites the files)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
scenarios="$here/../../../../scenarios/import"
mkdir -p "$scenarios/gpo"

# Samba's Python bindings live in Debian's python3, not in another interpreter on PATH.
/usr/bin/python3 - "$here" "$scenarios" <<'PY'
import sys
from samba.dcerpc import preg, misc
from samba.ndr import ndr_pack

TS = r"Software\Policies\Microsoft\Windows NT\Terminal Services"
PRIVACY = r"Software\Policies\Microsoft\Windows\AppPrivacy"

def pol(entries):
    f = preg.file()
    f.header.signature = "PReg"
    f.header.version = 1
    out = []
    for key, value, kind, data in entries:
        e = preg.entry()
        e.keyname, e.valuename, e.type = key, value, kind
        if data is not None:
            e.data = data
        out.append(e)
    f.num_entries = len(out)
    f.entries = out
    return ndr_pack(f)

def multi(*items):
    return ("\x00".join(items) + "\x00\x00").encode("utf-16le")

# A GPO that blocks playback redirection, allows recording, turns "Limit audio playback
# quality" Disabled and denies apps the microphone, among settings earshot ignores.
gpo_blocks_playback = [
    (r"Software\Policies\Microsoft\Windows NT\Terminal Services", "", misc.REG_NONE, None),
    (TS, "fDisableCdm", misc.REG_DWORD, 1),
    (TS, "fDisableCam", misc.REG_DWORD, 1),
    (TS, "fDisableAudioCapture", misc.REG_DWORD, 0),
    (TS, "**del.AllowedAudioQualityMode", misc.REG_SZ, " "),
    (TS, "MinEncryptionLevel", misc.REG_DWORD, 3),
    (TS, "SecurityLayer", misc.REG_SZ, "2"),
    (PRIVACY, "LetAppsAccessMicrophone", misc.REG_DWORD, 2),
    (PRIVACY, "LetAppsAccessMicrophone_UserInControlOfTheseApps", misc.REG_MULTI_SZ, multi("")),
    (PRIVACY, "LetAppsAccessMicrophone_ForceAllowTheseApps", misc.REG_MULTI_SZ,
     multi("Microsoft.WindowsSoundRecorder_8wekyb3d8bbwe", "Contoso.Dictation_1234")),
    (r"Software\Policies\Microsoft\Windows\WindowsUpdate\AU", "**DelVals.", misc.REG_SZ, " "),
    (r"Software\Policies\Microsoft\Windows Defender", "SignatureUpdateInterval", misc.REG_QWORD, 8),
]
open(sys.argv[1] + "/samba-gpo-blocks-playback.pol", "wb").write(pol(gpo_blocks_playback))
open(sys.argv[2] + "/gpo/Registry.pol", "wb").write(pol(gpo_blocks_playback))

# The mistake an admin makes by hand: "1" as a string where a DWORD belongs (entry 2).
open(sys.argv[1] + "/samba-string-where-dword.pol", "wb").write(pol([
    (TS, "fDisableCdm", misc.REG_DWORD, 1),
    (TS, "fDisableAudioCapture", misc.REG_SZ, "1"),
]))
PY

# Wine's reg.exe, in a prefix of its own that is removed afterwards.
prefix="$(mktemp -d /tmp/earshot-fixtures-wine.XXXXXX)"
trap 'WINEPREFIX="$prefix" wineserver -k 2>/dev/null || true; rm -rf "$prefix"' EXIT
export WINEPREFIX="$prefix" WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="
wine=/usr/lib/wine/wine64
"$wine" wineboot -i >/dev/null 2>&1
ts='HKLM\SOFTWARE\Policies\Microsoft\Windows NT\Terminal Services'
privacy='HKLM\SOFTWARE\Policies\Microsoft\Windows\AppPrivacy'
reg() { "$wine" reg "$@" >/dev/null; }
# A host whose policy blocks recording redirection and limits quality to medium.
reg add "$ts" /v fDisableAudioCapture /t REG_DWORD /d 1 /f
reg add "$ts" /v AllowedAudioQualityMode /t REG_DWORD /d 3 /f
reg add "$ts" /v fDisableCdm /t REG_DWORD /d 1 /f
reg add "$ts" /v SecurityLayer /t REG_SZ /d 2 /f
reg add "$privacy" /v LetAppsAccessMicrophone /t REG_DWORD /d 0 /f
reg add "$privacy" /v LetAppsAccessMicrophone_ForceDenyTheseApps /t REG_MULTI_SZ /d 'Contoso.Recorder_1234' /f
"$wine" reg export 'HKLM\SOFTWARE\Policies\Microsoft' 'Z:'"$(echo "$here" | tr / '\\')"'\wine-reg-export.reg' /y >/dev/null
cp "$here/wine-reg-export.reg" "$scenarios/policy.reg"
# The same with AllowedAudioQualityMode 2, which is none of 1, 3 and 7.
reg add "$ts" /v AllowedAudioQualityMode /t REG_DWORD /d 2 /f
"$wine" reg export "$ts" 'Z:'"$(echo "$here" | tr / '\\')"'\wine-quality-out-of-range.reg' /y >/dev/null
echo "wrote $here/*.pol, $here/*.reg and $scenarios/{gpo/Registry.pol,policy.reg}"
