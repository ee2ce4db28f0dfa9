# Lists, adds and removes virtual IP addresses in the ActiveStore only, so a
# rebooted node never comes back holding a VIP. An added address is usable
# only once duplicate address detection leaves Tentative; Duplicate means
# another machine answers for it, and the address is removed again. With a
# lifetime, an address expires by itself unless the agent extends it at
# each lease renewal: a frozen or killed agent's VIP goes away on its own.

# Get-DefaultAlias is the interface Windows itself would use for the
# default route: the lowest route metric plus interface metric.
function Get-DefaultAlias {
    $best = $null
    $bestMetric = [int]::MaxValue
    foreach ($r in @(Get-NetRoute -DestinationPrefix '0.0.0.0/0' -ErrorAction SilentlyContinue)) {
        $if = Get-NetIPInterface -InterfaceIndex $r.InterfaceIndex -AddressFamily IPv4 -ErrorAction SilentlyContinue
        $metric = [int]$r.RouteMetric + $(if ($if) { [int]$if.InterfaceMetric } else { 0 })
        if ($metric -lt $bestMetric) { $best = $r; $bestMetric = $metric }
    }
    if (-not $best) { Fail 'NotFound' 'no default route: name the interface in the IPResource (spec.interface)' }
    [string]$best.InterfaceAlias
}

# Assert-Static refuses an interface with DHCP on: New-NetIPAddress on it
# silently turns DHCP off, and the node loses its leased address at the
# next renewal.
function Assert-Static([string]$alias, [string]$ip) {
    $family = if ($ip.Contains(':')) { 'IPv6' } else { 'IPv4' }
    $if = Get-NetIPInterface -InterfaceAlias $alias -AddressFamily $family -ErrorAction SilentlyContinue
    if ($if -and [string]$if.Dhcp -eq 'Enabled') {
        Fail 'DhcpEnabled' "interface `"$alias`" has DHCP enabled for $family, and adding $ip would silently turn it off: give the interface a static address (Set-NetIPInterface -InterfaceAlias `"$alias`" -Dhcp Disabled, then New-NetIPAddress), or name an interface with a static address in the IPResource (spec.interface)"
    }
}

function Get-Lifetime([int]$seconds) { [TimeSpan]::FromSeconds($seconds) }

function Get-Gateway([string]$alias) {
    $r = Get-NetRoute -DestinationPrefix '0.0.0.0/0' -InterfaceAlias $alias -ErrorAction SilentlyContinue | Select-Object -First 1
    if ($r) { [string]$r.NextHop } else { '' }
}

function Get-Addresses([string]$ip) {
    $found = if ($ip) { Get-NetIPAddress -IPAddress $ip -PolicyStore ActiveStore -ErrorAction SilentlyContinue } else { Get-NetIPAddress -PolicyStore ActiveStore -ErrorAction SilentlyContinue }
    @($found | ForEach-Object {
        @{ ip = [string]$_.IPAddress; prefixLength = [int]$_.PrefixLength; interfaceAlias = [string]$_.InterfaceAlias
           state = [string]$_.AddressState; skipAsSource = [bool]$_.SkipAsSource; origin = [string]$_.PrefixOrigin
           validLifetimeSec = $(if ($_.ValidLifetime -and $_.ValidLifetime -lt [TimeSpan]::MaxValue) { [int]$_.ValidLifetime.TotalSeconds } else { -1 }) }
    })
}

function Invoke-Request($req) {
    switch ($req.op) {
        'list' { return @{ addresses = Get-Addresses '' } }
        'add' {
            if ($req.notAfterUnixMs -and [DateTimeOffset]::UtcNow.ToUnixTimeMilliseconds() -gt [long]$req.notAfterUnixMs) {
                # Asked before the lease could run out, run after: the
                # group may serve elsewhere by now.
                Fail 'LeaseInDoubt' "$($req.ip) not added: the request ran after the node's lease could have run out (it waited on the host, or the agent was frozen)"
            }
            $alias = if ($req.interfaceAlias) { [string]$req.interfaceAlias } else { Get-DefaultAlias }
            $have = @(Get-Addresses $req.ip)
            $life = [int]$req.validLifetimeSec
            if ($have.Count -eq 0) {
                Assert-Static $alias $req.ip
                if ($life -gt 0) {
                    [void](New-NetIPAddress -IPAddress $req.ip -InterfaceAlias $alias -PrefixLength ([byte]$req.prefixLength) -PolicyStore ActiveStore -SkipAsSource $true -ValidLifetime (Get-Lifetime $life) -PreferredLifetime (Get-Lifetime $life))
                } else {
                    [void](New-NetIPAddress -IPAddress $req.ip -InterfaceAlias $alias -PrefixLength ([byte]$req.prefixLength) -PolicyStore ActiveStore -SkipAsSource $true)
                }
            } elseif ($life -gt 0) {
                Set-NetIPAddress -IPAddress $req.ip -PolicyStore ActiveStore -ValidLifetime (Get-Lifetime $life) -PreferredLifetime (Get-Lifetime $life)
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
            # Forget the gateway's MAC here, so that the announcement that
            # follows (SendARP from the VIP to the gateway) must go out on
            # the wire as a broadcast ARP request from the VIP, instead of
            # being answered from this node's own cache.
            $gw = Get-Gateway $alias
            if ($gw -and $gw -ne '0.0.0.0') {
                Remove-NetNeighbor -IPAddress $gw -InterfaceAlias $alias -Confirm:$false -ErrorAction SilentlyContinue
            }
            return @{ interfaceAlias = $alias; gateway = $gw }
        }
        'extend' {
            # Every held address gets the lifetime again; one that expired
            # is reported, not put back (its group may serve elsewhere now).
            $missing = @()
            $secs = [int]$req.validLifetimeSec
            if ($req.validUntilUnixMs) {
                # Counted when this runs, not when it was asked: a request
                # that waited behind a slow step must not outlive the lease.
                $left = [int][Math]::Floor(([long]$req.validUntilUnixMs - [DateTimeOffset]::UtcNow.ToUnixTimeMilliseconds()) / 1000)
                if ($left -lt $secs) { $secs = $left }
            }
            if ($secs -lt 1) { return @{ missing = @(); late = $true } }
            $life = Get-Lifetime $secs
            foreach ($ip in @($req.ips)) {
                if (@(Get-Addresses $ip).Count -eq 0) { $missing += $ip; continue }
                Set-NetIPAddress -IPAddress $ip -PolicyStore ActiveStore -ValidLifetime $life -PreferredLifetime $life
            }
            return @{ missing = $missing }
        }
        'remove' {
            Remove-NetIPAddress -IPAddress $req.ip -PolicyStore ActiveStore -Confirm:$false -ErrorAction SilentlyContinue
            if (@(Get-Addresses $req.ip).Count -gt 0) { Fail 'Busy' "$($req.ip) is still on the node after Remove-NetIPAddress" }
            return @{ removed = $true }
        }
        default { Fail 'BadRequest' "unknown op `"$($req.op)`"" }
    }
}
