import Mustache

/// The console's pages as Mustache templates, compiled into the binary so the Center needs no
/// files beside it. Every page extends `layout`; `{{value}}` escapes HTML, and no template uses
/// the unescaped form.
enum ConsoleTemplates {
    static let library: MustacheLibrary = {
        var library = MustacheLibrary()
        for (name, text) in all {
            do { try library.register(text, named: name) } catch {
                preconditionFailure("console template \(name) does not parse: \(error)")
            }
        }
        return library
    }()

    static let all: [(String, String)] = [
        ("layout", layout), ("csrf", csrf), ("login", login), ("password", password), ("fleet", fleet), ("device", device),
        ("commands", commands), ("directory", directory), ("desktops", desktops), ("policies", policies),
        ("images", images), ("enrollment", enrollment), ("audit", audit), ("message", message), ("diagnostics", diagnostics),
    ]

    static let csrf = #"<input type="hidden" name="csrf" value="{{csrf}}">"#

    static let layout = #"""
    <!doctype html>
    <html lang="en">
    <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>{{title}} · Hearth Center</title>
    <link rel="stylesheet" href="/console/style.css">
    </head>
    <body>
    <a class="skip" href="#main">Skip to the content</a>
    <header class="top">
    <span class="brand">Hearth Center</span>
    {{#signedIn}}
    <nav aria-label="Main">
    <ul>
    {{#nav}}<li><a href="{{href}}"{{#current}} aria-current="page"{{/current}}>{{label}}</a></li>
    {{/nav}}
    </ul>
    </nav>
    <form method="post" action="/console/logout" class="who">{{> csrf}}
    <span>{{username}} <span class="role">({{role}})</span></span> <button type="submit">Log out</button>
    </form>
    {{/signedIn}}
    </header>
    <main id="main" tabindex="-1">
    <h1>{{title}}</h1>
    {{#notice}}<p class="notice" role="status">{{notice}}</p>{{/notice}}
    {{#error}}<p class="error" role="alert">{{error}}</p>{{/error}}
    {{$body}}{{/body}}
    </main>
    </body>
    </html>
    """#

    static let login = #"""
    {{<layout}}{{$body}}
    <form method="post" action="/console/login" class="card narrow">
    <input type="hidden" name="next" value="{{next}}">
    <p><label for="username">Username</label>
    <input id="username" name="username" autocomplete="username" required autofocus value="{{username}}"></p>
    <p><label for="password">Password</label>
    <input id="password" name="password" type="password" autocomplete="current-password" required></p>
    <p><button type="submit">Log in</button></p>
    </form>
    {{/body}}{{/layout}}
    """#

    static let password = #"""
    {{<layout}}{{$body}}
    {{#mustChange}}<p>This is a one-time password. Choose your own before you go on.</p>{{/mustChange}}
    <form method="post" action="/console/password" class="card narrow">{{> csrf}}
    <p><label for="current">Current password</label>
    <input id="current" name="current" type="password" autocomplete="current-password" required></p>
    <p><label for="new">New password</label>
    <input id="new" name="new" type="password" autocomplete="new-password" required aria-describedby="new-hint">
    <small id="new-hint">At least 12 characters.</small></p>
    <p><label for="repeat">New password again</label>
    <input id="repeat" name="repeat" type="password" autocomplete="new-password" required></p>
    <p><button type="submit">Change password</button></p>
    </form>
    {{/body}}{{/layout}}
    """#

    static let fleet = #"""
    {{<layout}}{{$body}}
    <section aria-labelledby="alerts-h">
    <h2 id="alerts-h">Alerts</h2>
    {{#alerts}}<ul class="alerts">
    {{#items}}<li><a href="/console/devices/{{deviceID}}">{{device}}</a>: {{text}}</li>
    {{/items}}</ul>{{/alerts}}
    {{^alerts}}<p>No alerts.</p>{{/alerts}}
    {{#awaitingApproval}}<p><a href="/console/commands">{{awaitingApproval}} command(s) await a second admin's approval.</a></p>{{/awaitingApproval}}
    </section>
    <section aria-labelledby="devices-h">
    <h2 id="devices-h">Devices</h2>
    <table>
    <caption class="sr-only">Enrolled devices</caption>
    <thead><tr><th scope="col">Device</th><th scope="col">User</th><th scope="col">Online</th><th scope="col">Last check-in</th>
    <th scope="col">Lease left</th><th scope="col">Security</th><th scope="col">Images</th></tr></thead>
    <tbody>
    {{#devices}}<tr>
    <th scope="row"><a href="/console/devices/{{id}}">{{name}}</a></th><td>{{user}}</td><td>{{online}}</td><td>{{lastCheckIn}}</td>
    <td>{{leaseLeft}}</td><td>{{security}}</td><td>{{images}}</td>
    </tr>
    {{/devices}}
    {{^devices}}<tr><td colspan="7">No device has enrolled yet. Make an enrollment token on the <a href="/console/enrollment">Enrollment</a> page.</td></tr>{{/devices}}
    </tbody>
    </table>
    </section>
    {{/body}}{{/layout}}
    """#

    static let device = #"""
    {{<layout}}{{$body}}
    <section aria-labelledby="summary-h">
    <h2 id="summary-h">Summary</h2>
    <dl class="facts">
    <dt>User</dt><dd>{{user}}</dd>
    <dt>Enrolled</dt><dd>{{enrolled}}</dd>
    <dt>Last check-in</dt><dd>{{lastCheckIn}}{{#address}} from {{address}}{{/address}}</dd>
    <dt>Lease</dt><dd>{{lease}}</dd>
    <dt>Security</dt><dd>{{security}}</dd>
    {{#verdict}}<dt>Measurements</dt><dd>{{verdict}}</dd>{{/verdict}}
    {{#locked}}<dt>Locked</dt><dd>{{locked}}</dd>{{/locked}}
    {{#retired}}<dt>Retired</dt><dd>{{retired}}</dd>{{/retired}}
    </dl>
    {{#mayApproveMeasurements}}
    <form method="post" action="/console/devices/{{id}}/measurements" class="card">{{> csrf}}
    <p id="measurements-hint">The software this device measured at start is not what was approved. Approve it only for an update you expect (a new Engine, QEMU or kernel); its work desktops start after its next check-in.</p>
    <p><button type="submit" aria-describedby="measurements-hint">Approve these measurements</button></p>
    </form>
    {{/mayApproveMeasurements}}
    </section>
    <section aria-labelledby="inventory-h">
    <h2 id="inventory-h">Inventory</h2>
    {{#inventory}}<dl class="facts">
    <dt>CPU</dt><dd>{{cpus}} × {{cpuModel}}</dd>
    <dt>Memory</dt><dd>{{memory}}</dd>
    <dt>Disk</dt><dd>{{disk}}</dd>
    <dt>Virtualization</dt><dd>{{virtualization}}</dd>
    <dt>Engine</dt><dd>{{engineVersion}}</dd>
    </dl>
    {{#compliance}}<p class="error">Below the minimum hardware: {{compliance}}</p>{{/compliance}}
    {{/inventory}}
    {{^inventory}}<p>This device has not checked in yet.</p>{{/inventory}}
    </section>
    <section aria-labelledby="vms-h">
    <h2 id="vms-h">Desktops</h2>
    <table>
    <thead><tr><th scope="col">VM</th><th scope="col">State</th><th scope="col">Image</th></tr></thead>
    <tbody>
    {{#vms}}<tr><th scope="row">{{name}}</th><td>{{state}}</td><td>{{image}}</td></tr>
    {{/vms}}{{^vms}}<tr><td colspan="3">None reported.</td></tr>{{/vms}}
    </tbody>
    </table>
    {{#hasUpdates}}<h3>Updates</h3>
    <ul>{{#updates}}<li>{{.}}</li>{{/updates}}</ul>{{/hasUpdates}}
    </section>
    {{#mayCommand}}
    <section aria-labelledby="actions-h">
    <h2 id="actions-h">Actions</h2>
    <div class="actions">
    <form method="post" action="/console/devices/{{id}}/commands">{{> csrf}}<input type="hidden" name="kind" value="lock"><button type="submit">Lock</button></form>
    <form method="post" action="/console/devices/{{id}}/commands">{{> csrf}}<input type="hidden" name="kind" value="unlock"><button type="submit">Unlock</button></form>
    <form method="post" action="/console/devices/{{id}}/commands">{{> csrf}}<input type="hidden" name="kind" value="collectDiagnostics"><button type="submit">Collect diagnostics</button></form>
    <form method="post" action="/console/devices/{{id}}/commands">{{> csrf}}<input type="hidden" name="kind" value="resetPersonalVM"><button type="submit">Reset the personal desktop</button></form>
    <form method="post" action="/console/devices/{{id}}/commands">{{> csrf}}<input type="hidden" name="kind" value="restartVM">
    <label for="restart-vm">Desktop</label> <select id="restart-vm" name="vm">{{#vms}}<option>{{name}}</option>{{/vms}}</select>
    <button type="submit">Restart desktop</button></form>
    </div>
    {{#mayWipe}}
    <form method="post" action="/console/devices/{{id}}/commands" class="card danger">{{> csrf}}<input type="hidden" name="kind" value="wipe">
    <h3>Wipe</h3>
    <p id="wipe-hint">Stops the work desktops and destroys their disks. {{#approval}}A second admin must approve it before the device gets it.{{/approval}}</p>
    <p><label for="confirm">Type the device's name, <strong>{{name}}</strong>, to confirm</label>
    <input id="confirm" name="confirm" autocomplete="off" required aria-describedby="wipe-hint"></p>
    <p><button type="submit" class="danger">Wipe this device</button></p>
    </form>
    {{/mayWipe}}
    </section>
    {{/mayCommand}}
    <section aria-labelledby="history-h">
    <h2 id="history-h">Command history</h2>
    <table>
    <thead><tr><th scope="col">Command</th><th scope="col">State</th><th scope="col">Asked by</th><th scope="col">Asked</th><th scope="col">Result</th></tr></thead>
    <tbody>
    {{#commands}}<tr><th scope="row">{{kind}}{{#vm}} ({{vm}}){{/vm}}</th><td>{{state}}</td><td>{{createdBy}}{{#approvedBy}}, approved by {{approvedBy}}{{/approvedBy}}</td><td>{{created}}</td><td>{{result}}{{#diagnostics}} <a href="/console/commands/{{id}}/diagnostics">Read the diagnostics</a>{{/diagnostics}}</td></tr>
    {{/commands}}{{^commands}}<tr><td colspan="5">No commands yet.</td></tr>{{/commands}}
    </tbody>
    </table>
    </section>
    {{/body}}{{/layout}}
    """#

    static let commands = #"""
    {{<layout}}{{$body}}
    <table>
    <thead><tr><th scope="col">Command</th><th scope="col">Device</th><th scope="col">State</th><th scope="col">Asked by</th><th scope="col">Asked</th><th scope="col">Result</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
    <tbody>
    {{#commands}}<tr><th scope="row">{{kind}}{{#vm}} ({{vm}}){{/vm}}</th><td><a href="/console/devices/{{deviceID}}">{{device}}</a></td><td>{{state}}</td>
    <td>{{createdBy}}{{#approvedBy}}, approved by {{approvedBy}}{{/approvedBy}}</td><td>{{created}}</td><td>{{result}}{{#diagnostics}} <a href="/console/commands/{{id}}/diagnostics">Read the diagnostics</a>{{/diagnostics}}</td>
    <td>{{#mayApprove}}<form method="post" action="/console/commands/{{id}}/approve">{{> csrf}}<button type="submit">Approve {{kind}} of {{device}}</button></form>{{/mayApprove}}
    {{#mayCancel}}<form method="post" action="/console/commands/{{id}}/cancel">{{> csrf}}<button type="submit">Cancel</button></form>{{/mayCancel}}</td></tr>
    {{/commands}}{{^commands}}<tr><td colspan="7">No commands yet.</td></tr>{{/commands}}
    </tbody>
    </table>
    {{/body}}{{/layout}}
    """#

    static let directory = #"""
    {{<layout}}{{$body}}
    <section aria-labelledby="groups-h">
    <h2 id="groups-h">Groups</h2>
    <table>
    <thead><tr><th scope="col">Group</th><th scope="col">Members</th></tr></thead>
    <tbody>
    {{#groups}}<tr><th scope="row">{{name}}</th><td>{{members}}</td></tr>
    {{/groups}}{{^groups}}<tr><td colspan="2">No groups yet.</td></tr>{{/groups}}
    </tbody>
    </table>
    {{#mayManage}}
    <form method="post" action="/console/groups" class="card">{{> csrf}}
    <h3>New group</h3>
    <p><label for="group-name">Name</label> <input id="group-name" name="name" required></p>
    <p><button type="submit">Create group</button></p>
    </form>
    <form method="post" action="/console/members" class="card">{{> csrf}}
    <h3>Add a user to a group</h3>
    <p><label for="member-user">User</label> <select id="member-user" name="user">{{#users}}<option value="{{id}}">{{username}}</option>{{/users}}</select></p>
    <p><label for="member-group">Group</label> <select id="member-group" name="group">{{#groups}}<option value="{{id}}">{{name}}</option>{{/groups}}</select></p>
    <p><button type="submit">Add to group</button></p>
    </form>
    {{/mayManage}}
    </section>
    <section aria-labelledby="users-h">
    <h2 id="users-h">Users</h2>
    <table>
    <thead><tr><th scope="col">User</th><th scope="col">Name</th><th scope="col">Email</th><th scope="col">Groups</th></tr></thead>
    <tbody>
    {{#users}}<tr><th scope="row">{{username}}</th><td>{{displayName}}</td><td>{{email}}</td><td>{{groupNames}}</td></tr>
    {{/users}}{{^users}}<tr><td colspan="4">No users yet.</td></tr>{{/users}}
    </tbody>
    </table>
    {{#mayManage}}
    <form method="post" action="/console/users" class="card">{{> csrf}}
    <h3>New user</h3>
    <p><label for="user-name">Username</label> <input id="user-name" name="username" required></p>
    <p><label for="user-display">Full name</label> <input id="user-display" name="displayName"></p>
    <p><label for="user-email">Email</label> <input id="user-email" name="email" type="email"></p>
    <p><button type="submit">Create user</button></p>
    </form>
    {{/mayManage}}
    </section>
    {{/body}}{{/layout}}
    """#

    static let desktops = #"""
    {{<layout}}{{$body}}
    <table>
    <thead><tr><th scope="col">Desktop</th><th scope="col">Role</th><th scope="col">Image</th><th scope="col">CPUs, memory</th><th scope="col">Network</th><th scope="col">Assigned to</th></tr></thead>
    <tbody>
    {{#definitions}}<tr><th scope="row">{{name}}</th><td>{{role}}</td><td>{{image}} ({{channel}})</td><td>{{cpus}}, {{memory}}</td><td>{{network}}</td><td>{{assigned}}</td></tr>
    {{/definitions}}{{^definitions}}<tr><td colspan="6">No desktops defined yet.</td></tr>{{/definitions}}
    </tbody>
    </table>
    {{#mayManage}}
    <form method="post" action="/console/desktops" class="card">{{> csrf}}
    <h3>New desktop</h3>
    <p><label for="vm-name">Name</label> <input id="vm-name" name="name" required value="{{form.name}}"></p>
    <p><label for="vm-role">Role</label> <select id="vm-role" name="role"><option value="work">work (managed by IT)</option><option value="personal">personal (the user's own)</option></select></p>
    <p><label for="vm-image">Image</label> <input id="vm-image" name="image" required list="image-names" value="{{form.image}}">
    <datalist id="image-names">{{#imageNames}}<option value="{{.}}">{{/imageNames}}</datalist></p>
    <p><label for="vm-channel">Channel</label> <input id="vm-channel" name="channel" value="stable"></p>
    <p><label for="vm-cpus">CPUs</label> <input id="vm-cpus" name="cpus" inputmode="numeric" value="2"></p>
    <p><label for="vm-memory">Memory (MiB)</label> <input id="vm-memory" name="memoryMiB" inputmode="numeric" value="2048"></p>
    <p><label for="vm-network">Network</label> <select id="vm-network" name="network"><option value="">the role's default</option><option value="none">none</option><option value="internet">internet only</option><option value="full">full</option></select></p>
    <p><button type="submit">Create desktop</button></p>
    </form>
    <form method="post" action="/console/assignments" class="card">{{> csrf}}
    <h3>Assign a desktop</h3>
    <p><label for="assign-vm">Desktop</label> <select id="assign-vm" name="vm">{{#definitions}}<option>{{name}}</option>{{/definitions}}</select></p>
    <p><label for="assign-target">To</label> <select id="assign-target" name="target">
    {{#groups}}<option value="group/{{id}}">group {{name}}</option>{{/groups}}
    {{#users}}<option value="user/{{id}}">user {{username}}</option>{{/users}}
    </select></p>
    <p><button type="submit">Assign</button></p>
    </form>
    {{/mayManage}}
    {{/body}}{{/layout}}
    """#

    static let policies = #"""
    {{<layout}}{{$body}}
    <p>A device follows the strictest of its groups' policies; a policy on a desktop overrides its groups' (docs/CENTER.md has the rules).</p>
    <table>
    <thead><tr><th scope="col">Applies to</th><th scope="col">Lease (days)</th><th scope="col">Check-in (s)</th><th scope="col">Network</th><th scope="col">USB classes</th><th scope="col">Backups</th><th scope="col">Minimum hardware</th></tr></thead>
    <tbody>
    {{#policies}}<tr><th scope="row">{{scope}}</th><td>{{leaseDays}}</td><td>{{checkIn}}</td><td>{{network}}</td><td>{{usb}}</td><td>{{backup}}</td><td>{{minimum}}</td></tr>
    {{/policies}}{{^policies}}<tr><td colspan="7">No policies yet: the defaults apply.</td></tr>{{/policies}}
    </tbody>
    </table>
    {{#mayManage}}
    <form method="post" action="/console/policies" class="card">{{> csrf}}
    <h3>Set a policy</h3>
    <p><label for="p-scope">Applies to</label> <select id="p-scope" name="scope">
    {{#groups}}<option value="group:{{name}}">group {{name}}</option>{{/groups}}{{#definitions}}<option value="vm:{{name}}">desktop {{name}}</option>{{/definitions}}
    </select></p>
    <p><label for="p-lease">Lease (days offline before lockout)</label> <input id="p-lease" name="leaseDays" inputmode="numeric" value="{{form.leaseDays}}"></p>
    <p><label for="p-checkin">Check-in interval (seconds)</label> <input id="p-checkin" name="checkInIntervalSeconds" inputmode="numeric" value="{{form.checkInIntervalSeconds}}"></p>
    <p><label for="p-network">Network</label> <select id="p-network" name="network"><option value="">not set</option><option value="none">none</option><option value="internet">internet only</option><option value="full">full</option></select></p>
    <p><label for="p-usb">USB device classes (comma-separated)</label> <input id="p-usb" name="usbClasses" value="{{form.usbClasses}}"></p>
    <p><label for="p-backup">Backup schedule</label> <input id="p-backup" name="backupSchedule" value="{{form.backupSchedule}}"></p>
    <p><label for="p-cpus">Minimum CPUs</label> <input id="p-cpus" name="minimumCPUs" inputmode="numeric" value="{{form.minimumCPUs}}"></p>
    <p><label for="p-memory">Minimum memory (MiB)</label> <input id="p-memory" name="minimumMemoryMiB" inputmode="numeric" value="{{form.minimumMemoryMiB}}"></p>
    <p><button type="submit">Save policy</button></p>
    </form>
    {{/mayManage}}
    {{/body}}{{/layout}}
    """#

    static let images = #"""
    {{<layout}}{{$body}}
    {{#images}}
    <section aria-labelledby="image-{{name}}">
    <h2 id="image-{{name}}">{{name}}</h2>
    <p>Channels: {{channels}}</p>
    <table>
    <thead><tr><th scope="col">Version</th><th scope="col">Published</th><th scope="col">Notes</th></tr></thead>
    <tbody>{{#versions}}<tr><th scope="row">{{version}}</th><td>{{published}}</td><td>{{notes}}</td></tr>{{/versions}}</tbody>
    </table>
    {{#mayManage}}
    <form method="post" action="/console/images/{{name}}/channel" class="inline">{{> csrf}}
    <label for="ch-{{name}}">Channel</label> <input id="ch-{{name}}" name="channel" value="stable" size="8">
    <label for="ver-{{name}}">gets version</label> <select id="ver-{{name}}" name="version">{{#versions}}<option>{{version}}</option>{{/versions}}</select>
    <button type="submit">Promote or roll back</button>
    </form>
    {{/mayManage}}
    </section>
    {{/images}}
    {{^images}}<p>No images yet. Publish one with <code>hearth image publish</code> and register it with <code>hearth admin image add</code>.</p>{{/images}}
    {{/body}}{{/layout}}
    """#

    static let enrollment = #"""
    {{<layout}}{{$body}}
    {{#secret}}
    <div class="card" role="status">
    <h2>New token</h2>
    <p>Give this token to the device's Engine (<code>hearth engine run --enroll-token-file FILE</code>). It is shown only now, and works once, until {{expires}}.</p>
    <p><output id="secret" class="secret">{{secret}}</output></p>
    </div>
    {{/secret}}
    <table>
    <thead><tr><th scope="col">Note</th><th scope="col">For user</th><th scope="col">Made by</th><th scope="col">Expires</th><th scope="col">Used</th></tr></thead>
    <tbody>
    {{#tokens}}<tr><th scope="row">{{note}}</th><td>{{user}}</td><td>{{createdBy}}</td><td>{{expires}}</td><td>{{used}}</td></tr>
    {{/tokens}}{{^tokens}}<tr><td colspan="5">No tokens yet.</td></tr>{{/tokens}}
    </tbody>
    </table>
    {{#mayEnroll}}
    <form method="post" action="/console/enrollment" class="card">{{> csrf}}
    <h3>New enrollment token</h3>
    <p><label for="t-user">For user</label> <select id="t-user" name="user"><option value="">nobody yet</option>{{#users}}<option value="{{id}}">{{username}}</option>{{/users}}</select></p>
    <p><label for="t-note">Note</label> <input id="t-note" name="note" placeholder="laptop for Alice"></p>
    <p><label for="t-hours">Valid for (hours)</label> <input id="t-hours" name="validHours" inputmode="numeric" value="24"></p>
    <p><button type="submit">Make token</button></p>
    </form>
    {{/mayEnroll}}
    {{/body}}{{/layout}}
    """#

    static let audit = #"""
    {{<layout}}{{$body}}
    <form method="get" action="/console/audit" class="inline" role="search" aria-label="Filter the audit log">
    <label for="f-actor">Who</label> <input id="f-actor" name="actor" value="{{filter.actor}}" placeholder="admin:owner">
    <label for="f-action">Action</label> <input id="f-action" name="action" value="{{filter.action}}" placeholder="command.approve">
    <label for="f-target">Target</label> <input id="f-target" name="target" value="{{filter.target}}">
    <button type="submit">Filter</button>
    </form>
    <table>
    <thead><tr><th scope="col">When</th><th scope="col">Who</th><th scope="col">Action</th><th scope="col">Target</th><th scope="col">From</th><th scope="col">Change</th></tr></thead>
    <tbody>
    {{#entries}}<tr><td>{{at}}</td><td>{{actor}}</td><th scope="row">{{action}}</th><td>{{target}}</td><td>{{address}}</td><td class="change">{{change}}</td></tr>
    {{/entries}}{{^entries}}<tr><td colspan="6">No entries match.</td></tr>{{/entries}}
    </tbody>
    </table>
    {{/body}}{{/layout}}
    """#

    static let diagnostics = #"""
    {{<layout}}{{$body}}
    <p>From <a href="/console/devices/{{deviceID}}">{{device}}</a>, collected {{collected}}, uploaded {{uploaded}} ({{size}}).</p>
    <h2>Summary</h2>
    <pre>{{summary}}</pre>
    {{#files}}<section aria-labelledby="file-{{index}}">
    <h2 id="file-{{index}}">{{path}}</h2>
    <p>{{size}}{{#cut}}, its last part shown{{/cut}}</p>
    <pre>{{text}}</pre>
    </section>
    {{/files}}
    {{/body}}{{/layout}}
    """#

    static let message = #"""
    {{<layout}}{{$body}}
    <p><a href="{{back}}">{{backLabel}}</a></p>
    {{/body}}{{/layout}}
    """#

    static let style = """
    :root { --ink: #1d2330; --muted: #5b6474; --line: #d9dde4; --accent: #b4461d; --bg: #f7f5f2; --danger: #a3141d; }
    * { box-sizing: border-box; }
    body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--ink); background: var(--bg); }
    .skip { position: absolute; left: -999px; } .skip:focus { left: 8px; top: 8px; background: #fff; padding: 6px; z-index: 2; }
    .sr-only { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); }
    header.top { display: flex; align-items: center; gap: 24px; background: var(--ink); color: #fff; padding: 10px 24px; flex-wrap: wrap; }
    .brand { font-weight: 700; letter-spacing: .02em; color: #ffb38a; }
    nav ul { list-style: none; display: flex; gap: 4px; margin: 0; padding: 0; flex-wrap: wrap; }
    nav a { color: #fff; text-decoration: none; padding: 6px 10px; border-radius: 4px; }
    nav a[aria-current="page"], nav a:hover { background: #3a4356; }
    .who { margin-left: auto; display: flex; gap: 8px; align-items: center; } .role { color: #c3c9d4; }
    main { padding: 16px 24px 48px; max-width: 1200px; }
    h1 { margin: 8px 0 16px; font-size: 1.6em; } h2 { font-size: 1.2em; margin-top: 28px; }
    table { border-collapse: collapse; width: 100%; background: #fff; border: 1px solid var(--line); }
    th, td { text-align: left; padding: 7px 10px; border-bottom: 1px solid var(--line); vertical-align: top; }
    thead th { background: #eef0f3; font-size: .9em; color: var(--muted); }
    tbody th { font-weight: 600; }
    a { color: #1f4fa8; }
    .card { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 12px 16px; margin: 16px 0; max-width: 640px; }
    .card.narrow { max-width: 380px; } .card h3 { margin-top: 4px; }
    .card.danger { border-color: var(--danger); }
    label { display: inline-block; min-width: 12em; } .inline label { min-width: 0; }
    input, select, button { font: inherit; padding: 5px 8px; border: 1px solid #aab1bd; border-radius: 4px; }
    button { background: var(--ink); color: #fff; border-color: var(--ink); cursor: pointer; }
    button.danger { background: var(--danger); border-color: var(--danger); }
    :focus-visible { outline: 3px solid #ff9a5c; outline-offset: 2px; }
    .actions { display: flex; gap: 8px; flex-wrap: wrap; align-items: center; } .actions form { margin: 0; }
    .notice { background: #e5f3e8; border-left: 4px solid #2f7d43; padding: 8px 12px; }
    .error { background: #fbe7e7; border-left: 4px solid var(--danger); padding: 8px 12px; }
    .alerts li { margin: 4px 0; }
    dl.facts { display: grid; grid-template-columns: 12em 1fr; gap: 4px 12px; background: #fff; border: 1px solid var(--line); padding: 10px 14px; }
    dl.facts dt { color: var(--muted); } dl.facts dd { margin: 0; }
    .secret { font: 1.1em ui-monospace, monospace; background: #fff7d6; padding: 4px 8px; word-break: break-all; }
    td.change { font: .85em ui-monospace, monospace; max-width: 28em; word-break: break-all; }
    pre { background: #fff; border: 1px solid var(--line); padding: 8px 12px; overflow-x: auto; font-size: .85em; white-space: pre-wrap; }
    small { display: block; color: var(--muted); margin-left: 12em; }
    """
}
