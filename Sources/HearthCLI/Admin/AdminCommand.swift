import ArgumentParser

/// `hearth admin …`: the Center's admin API from a terminal, after `hearth admin login`.
struct AdminCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "admin",
        abstract: "Manage a Center: users, groups, enrollment tokens, devices, commands and the audit log.",
        subcommands: [
            AdminLoginCommand.self, AdminPasswordCommand.self, AdminUsersCommand.self, AdminGroupsCommand.self,
            AdminEnrollTokenCommand.self, AdminDevicesCommand.self, AdminCommandCommand.self, AdminApproveCommand.self,
            AdminAuditCommand.self, AdminDiagnosticsCommand.self,
        ]
    )
}
