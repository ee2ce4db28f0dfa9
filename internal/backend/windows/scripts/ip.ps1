# Lists, adds and removes virtual IP addresses in the ActiveStore only, so a
# rebooted node never comes back holding a VIP. An added address is usable
# only once duplicate address detection leaves Tentative; Duplicate means
# another machine answers for it, and the address is removed again.
function Get-DefaultAlias {
    $r = Get-NetRoute -DestinationPrefix '0.0.0.0/0' -ErrorAction SilentlyContinue | Sort-Object RouteMetric | Select-Object -First 1
    if (-not $r) { Fail 'NotFound' 'no default route: name the interface in the IPResource (spec.interface)' }
    [string]$r.InterfaceAlias
}

function Get-Gateway([string]$alias) {
    $r = Get-NetRoute -DestinationPrefix '0.0.0.0/0' -InterfaceAlias $alias -ErrorAction SilentlyContinue | Select-Object -First 1
    if ($r) { [string]$r.NextHop } else { '' }
}

function Get-Addresses([string]$ip) {
    $found = if ($ip) { Get-NetIPAddress -IPAddress $ip -PolicyStore ActiveStore -ErrorAction SilentlyContinue } else { Get-NetIPAddress -PolicyStore ActiveStore -ErrorAction SilentlyContinue }
    @($found | ForEach-Object {
        @{ ip = [string]$_.IPAddress; prefixLength = [int]$_.PrefixLength; interfaceAlias = [string]$_.InterfaceAlias
           state = [string]$_.AddressState; skipAsSource = [bool]$_.SkipAsSource; origin = [string]$_.PrefixOrigin }
    })
}

function Invoke-Request($req) {
    switch ($req.op) {
        'list' { return @{ addresses = Get-Addresses '' } }
        'add' {
            $alias = if ($req.interfaceAlias) { [string]$req.interfaceAlias } else { Get-DefaultAlias }
            $have = @(Get-Addresses $req.ip)
            if ($have.Count -eq 0) {
                [void](New-NetIPAddress -IPAddress $req.ip -InterfaceAlias $alias -PrefixLength ([byte]$req.prefixLength) -PolicyStore ActiveStore -SkipAsSource $true)
            }
            $deadline = [DateTime]::UtcNow.AddMilliseconds([int]$req.timeoutMs)
            while ($true) {
                $a = @(Get-Addresses $req.ip) | Select-Object -First 1
                if ($a -and $a.state -eq 'Preferred') { break }
                if ($a -and $a.state -eq 'Duplicate') {
                    Remove-NetIPAddress -IPAddress $req.ip -PolicyStore ActiveStore -Confirm:$false -ErrorAction SilentlyContinue
                    Fail 'AddressInUse' "$($req.ip) is held by another machine on the network (duplicate address detection); find that machine"
                }
                if ([DateTime]::UtcNow -gt $deadline) { Fail 'Timeout' "$($req.ip) still $($a.state) after $($req.timeoutMs) ms" }
                Start-Sleep -Milliseconds 50
            }
            return @{ interfaceAlias = $alias; gateway = (Get-Gateway $alias) }
        }
        'remove' {
            Remove-NetIPAddress -IPAddress $req.ip -PolicyStore ActiveStore -Confirm:$false -ErrorAction SilentlyContinue
            if (@(Get-Addresses $req.ip).Count -gt 0) { Fail 'Busy' "$($req.ip) is still on the node after Remove-NetIPAddress" }
            return @{ removed = $true }
        }
        default { Fail 'BadRequest' "unknown op `"$($req.op)`"" }
    }
}
