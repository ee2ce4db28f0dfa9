# The persistent host (see pshost.go): the prelude and every script are
# loaded once, then it reads one request a line ({"id","script","request"})
# and writes one reply a line ({"id","ok","result"} or {"id","ok":false,
# "error"}) until stdin closes. A script's functions live in the scope of
# its own call, so two scripts' Invoke-Request never meet.
$SkHandlers = @{}
foreach ($name in @($SkScripts.Keys)) {
    $SkHandlers[$name] = [ScriptBlock]::Create($SkScripts[$name] + "`nInvoke-Request `$args[0]")
}

function Send-Line($doc) {
    [Console]::Out.WriteLine((ConvertTo-Json -InputObject $doc -Depth 10 -Compress))
    [Console]::Out.Flush()
}

# The modules load once, here, not at each request; one that is missing
# is reported by the first request that needs it.
foreach ($m in @('IISAdministration', 'NetTCPIP', 'Storage')) { Import-Module $m -ErrorAction SilentlyContinue }

Send-Line @{ ready = $true; pid = $PID; psVersion = $PSVersionTable.PSVersion.ToString() }
# Invoke-Script runs one script's Invoke-Request with a request.
function Invoke-Script([string]$name, $request) {
    $handler = $SkHandlers[$name]
    if (-not $handler) { Fail 'UnknownScript' "the host has no script `"$name`"" }
    & $handler $request
}

# A request is one script call ({"id","script","request"}) or a batch of
# them ({"id","batch":[{"script","request"},...]}: a group's take-down or
# bring-up), run in order until one fails; the reply lists the results of
# those that ran, and done counts them, whether the batch failed or not.
while ($true) {
    $line = [Console]::In.ReadLine()
    if ($null -eq $line) { break }
    if (-not $line.Trim()) { continue }
    $id = 0
    $done = 0
    $results = @()
    try {
        $msg = ConvertFrom-Json -InputObject $line
        $id = $msg.id
        if ($null -ne $msg.batch) {
            foreach ($item in @($msg.batch)) {
                $results += , (Invoke-Script ([string]$item.script) $item.request)
                $done++
            }
            Send-Line @{ id = $id; ok = $true; result = $results; done = $done }
        } else {
            $result = Invoke-Script ([string]$msg.script) $msg.request
            Send-Line @{ id = $id; ok = $true; result = $result }
        }
    } catch {
        Send-Line @{ id = $id; ok = $false; error = (Get-SkError $_); result = $results; done = $done }
    }
}
