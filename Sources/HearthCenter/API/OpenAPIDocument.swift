/// The Center's API as an OpenAPI 3.1 document, served at `/openapi.yaml` and printed by
/// `hearth center openapi`. Tests check that it names exactly the routes the Center serves, with
/// the same security; schemathesis fuzzes the running Center from it.
public enum OpenAPIDocument {
    public static let text = #"""
openapi: 3.1.0
info:
  title: Hearth Center API
  version: 1.0.0
  description: |
    The management server of Hearth. Admins log in with a password and send the session token
    as a bearer token; devices enroll with a one-time token and then call with their client
    certificate (mutual TLS). Every error is a JSON object {"error": {"code", "message"}}.
servers:
  - url: https://127.0.0.1:8443
components:
  securitySchemes:
    session:
      type: http
      scheme: bearer
      description: A session token from POST /api/v1/session.
    device:
      type: mutualTLS
      description: The client certificate the Center issued to the device at enrollment.
  schemas:
    Error:
      type: object
      required: [error]
      properties:
        error:
          type: object
          required: [code, message]
          properties:
            code: {type: string}
            message: {type: string}
    Role:
      type: string
      enum: [owner, operator, helpdesk, auditor]
    Admin:
      type: object
      required: [id, username, role, mustChangePassword, created]
      properties:
        id: {type: string}
        username: {type: string}
        role: {$ref: '#/components/schemas/Role'}
        mustChangePassword: {type: boolean}
        created: {type: string, format: date-time}
        disabled: {type: string, format: date-time}
    User:
      type: object
      required: [id, username, displayName, email, created, groups]
      properties:
        id: {type: string}
        username: {type: string}
        displayName: {type: string}
        email: {type: string}
        created: {type: string, format: date-time}
        groups: {type: array, items: {type: string}}
    Group:
      type: object
      required: [id, name, created, members]
      properties:
        id: {type: string}
        name: {type: string}
        created: {type: string, format: date-time}
        members: {type: array, items: {type: string}}
    EnrollmentToken:
      type: object
      required: [id, note, createdBy, created, expires]
      properties:
        id: {type: string}
        userID: {type: string}
        note: {type: string}
        createdBy: {type: string}
        created: {type: string, format: date-time}
        expires: {type: string, format: date-time}
        used: {type: string, format: date-time}
        deviceID: {type: string}
    DeviceStatus:
      type: object
      required: [engineVersion, inventory, vms, security]
      properties:
        engineVersion: {type: string}
        inventory:
          type: object
          required: [cpuModel, cpus, memoryBytes, diskBytes, virtualization]
          properties:
            cpuModel: {type: string}
            cpus: {type: integer}
            memoryBytes: {type: integer, minimum: 0}
            diskBytes: {type: integer, minimum: 0}
            virtualization: {type: string}
        vms:
          type: array
          items:
            type: object
            required: [name, state]
            properties:
              name: {type: string}
              state: {type: string}
              image: {type: string}
        security: {type: string}
        updates:
          type: array
          description: Image versions the Engine is pulling or pulled since it started.
          items:
            type: object
            required: [image, state, bytesFetched, bytesToFetch, virtualSize]
            properties:
              image: {type: string, description: NAME@VERSION}
              state: {type: string, enum: [pulling, ready, failed]}
              bytesFetched: {type: integer, minimum: 0}
              bytesToFetch: {type: integer, minimum: 0}
              virtualSize: {type: integer, minimum: 0}
              error: {type: string}
        compliance:
          type: array
          description: Where the device falls short of its policies (minimum hardware).
          items: {type: string}
        lease: {type: string, description: The lease as the device sees it.}
        locked: {type: string, description: Why IT locked the device, when it is locked.}
        measurements: {$ref: '#/components/schemas/MeasurementReport'}
    MeasurementReport:
      type: object
      description: The security zone's measured start and the terms its work key's policy must name (docs/SECURITY.md).
      required: [pcr, pcrValue, components, policyRef, counterIndex, counterValue]
      properties:
        pcr: {type: integer, minimum: 0, maximum: 23}
        pcrValue: {type: string, pattern: '^[0-9a-f]{64}$'}
        base: {type: string, pattern: '^[0-9a-f]{64}$'}
        components:
          type: array
          minItems: 1
          maxItems: 64
          items:
            type: object
            required: [component, path, sha256]
            properties:
              component: {type: string, minLength: 1, maxLength: 64}
              path: {type: string, maxLength: 4096}
              sha256: {type: string, pattern: '^[0-9a-f]{64}$'}
        policyRef: {type: string, pattern: '^([0-9a-f]{2}){1,32}$'}
        counterIndex: {type: integer, minimum: 16777216, maximum: 29360127}
        counterValue: {type: integer, minimum: 0}
        attestation:
          type: object
          description: The TPM's quote of the PCR over the nonce of the previous check-in's answer.
          required: [key, nonce, quote, signature]
          properties:
            key: {type: string, description: Base64 of the attestation key (P-256, x ‖ y); the Center pins the first.}
            nonce: {type: string, pattern: '^[0-9a-f]{64}$'}
            quote: {type: string, description: Base64 of TPMS_ATTEST.}
            signature: {type: string, description: Base64 of r ‖ s.}
    Device:
      type: object
      required: [id, name, certificateSerial, enrolled]
      properties:
        id: {type: string}
        name: {type: string}
        userID: {type: string}
        certificateSerial: {type: string}
        enrolled: {type: string, format: date-time}
        lastCheckIn: {type: string, format: date-time}
        lastAddress: {type: string}
        retired: {type: string, format: date-time}
        status: {$ref: '#/components/schemas/DeviceStatus'}
        measurementVerdict: {type: string, description: What the Center made of the measurements the device last reported.}
    AuditEntry:
      type: object
      required: [seq, at, actor, action, target, address]
      properties:
        seq: {type: integer}
        at: {type: string, format: date-time}
        actor: {type: string}
        action: {type: string}
        target: {type: string}
        address: {type: string}
        before: {type: string}
        after: {type: string}
    Policy:
      type: object
      description: Every field optional; docs/CENTER.md has the precedence rules.
      properties:
        leaseDays: {type: integer, minimum: 1, maximum: 365}
        checkInIntervalSeconds: {type: integer, minimum: 30, maximum: 86400}
        imageExpiry: {type: string, format: date-time}
        usbClasses: {type: array, items: {type: string, enum: [hid, storage, audio, video, printer, smartcard, wireless, communications]}}
        network: {type: string, enum: [none, internet, full]}
        backupSchedule: {type: string, enum: [never, hourly, daily, weekly]}
        minimumCPUs: {type: integer, minimum: 1, maximum: 256}
        minimumMemoryMiB: {type: integer, minimum: 128, maximum: 4194304}
        minimumDiskGiB: {type: integer, minimum: 1, maximum: 65536}
    Image:
      type: object
      required: [name, created, versions, channels]
      properties:
        name: {type: string}
        created: {type: string, format: date-time}
        versions:
          type: array
          items:
            type: object
            required: [version, notes, published]
            properties:
              version: {type: string}
              notes: {type: string}
              published: {type: string, format: date-time}
        channels: {type: object, additionalProperties: {type: string}}
    VMDefinitionInput:
      type: object
      required: [role, image]
      properties:
        name: {type: string}
        role: {type: string, enum: [work, personal]}
        image: {type: string}
        channel: {type: string}
        cpus: {type: integer, minimum: 1, maximum: 64}
        memoryMiB: {type: integer, minimum: 64, maximum: 262144}
        localDiskBytes: {type: integer, minimum: 1048576}
        userDiskBytes: {type: integer, minimum: 1048576}
        network: {type: string, enum: [none, internet, full]}
        backedUpDisks: {type: array, items: {type: string, enum: [user, local]}}
    VMDefinition:
      allOf:
        - {$ref: '#/components/schemas/VMDefinitionInput'}
        - type: object
          required: [name, users, groups]
          properties:
            users: {type: array, items: {type: string}}
            groups: {type: array, items: {type: string}}
            policy: {$ref: '#/components/schemas/Policy'}
    DiagnosticsBundle:
      type: object
      required: [collected, summary, files]
      properties:
        collected: {type: string, format: date-time}
        summary: {type: string, description: "VM states, lease, updates and lock, one line each."}
        files:
          type: array
          items:
            type: object
            required: [path, size, text]
            properties:
              path: {type: string}
              size: {type: integer, description: The file's whole size; text is its end when it is larger.}
              text: {type: string}
    Command:
      type: object
      required: [id, deviceID, kind, state, createdBy, created]
      properties:
        id: {type: string}
        deviceID: {type: string}
        kind: {type: string, enum: [lock, unlock, wipe, restartVM, resetPersonalVM, collectDiagnostics]}
        vm: {type: string}
        state: {type: string, enum: [awaitingApproval, pending, delivered, acknowledged, completed, failed, cancelled]}
        createdBy: {type: string}
        created: {type: string, format: date-time}
        approvedBy: {type: string}
        delivered: {type: string, format: date-time}
        acknowledged: {type: string, format: date-time}
        finished: {type: string, format: date-time}
        result: {type: string}
    Settings:
      type: object
      required: [wipeNeedsApproval]
      properties:
        wipeNeedsApproval: {type: boolean}
  responses:
    Error:
      description: What was wrong, and what to do.
      content:
        application/json:
          schema: {$ref: '#/components/schemas/Error'}
paths:
  /health:
    get:
      operationId: health
      security: []
      responses:
        '200':
          description: The Center and its database answer.
          content:
            application/json:
              schema:
                type: object
                required: [status, database]
                properties:
                  status: {type: string}
                  database: {type: string}
        '503': {$ref: '#/components/responses/Error'}
  /metrics:
    get:
      operationId: metrics
      security: []
      responses:
        '200':
          description: Request counts and durations, check-ins, enrollments and failed logins, in Prometheus' text format.
          content:
            text/plain: {}
  /repository/{path}:
    parameters:
      - {name: path, in: path, required: true, schema: {type: string}, description: 'A file of the image repository: metadata/…, indexes/…, packs/… (docs/IMAGES.md).'}
    get:
      operationId: repositoryFile
      security: [{device: []}, {session: []}]
      description: Byte ranges (Range) are answered with 206. Clients trust nothing here until its signed metadata says so.
      responses:
        '200':
          description: The file.
          content:
            application/octet-stream: {}
        '206':
          description: The range asked for.
          content:
            application/octet-stream: {}
        '401': {$ref: '#/components/responses/Error'}
        '403': {$ref: '#/components/responses/Error'}
        '404': {$ref: '#/components/responses/Error'}
  /openapi.yaml:
    get:
      operationId: openapi
      security: []
      responses:
        '200':
          description: This document.
          content:
            application/yaml: {}
  /api/v1/session:
    post:
      operationId: login
      security: []
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              required: [username, password]
              properties:
                username: {type: string}
                password: {type: string}
      responses:
        '201':
          description: A session token, valid for 12 hours.
          content:
            application/json:
              schema:
                type: object
                required: [token, expires, admin]
                properties:
                  token: {type: string}
                  expires: {type: string, format: date-time}
                  admin: {$ref: '#/components/schemas/Admin'}
        '400': {$ref: '#/components/responses/Error'}
        '401': {$ref: '#/components/responses/Error'}
        '429': {$ref: '#/components/responses/Error'}
    delete:
      operationId: logout
      security: [{session: []}]
      responses:
        '204': {description: The session ended.}
        '401': {$ref: '#/components/responses/Error'}
  /api/v1/me:
    get:
      operationId: me
      security: [{session: []}]
      responses:
        '200':
          description: The admin logged in.
          content:
            application/json:
              schema: {$ref: '#/components/schemas/Admin'}
        '401': {$ref: '#/components/responses/Error'}
  /api/v1/me/password:
    post:
      operationId: changePassword
      security: [{session: []}]
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              required: [current, new]
              properties:
                current: {type: string}
                new: {type: string, minLength: 12, maxLength: 72}
      responses:
        '204': {description: Changed; the admin's other sessions ended.}
        '400': {$ref: '#/components/responses/Error'}
        '401': {$ref: '#/components/responses/Error'}
        '403': {$ref: '#/components/responses/Error'}
  /api/v1/admins:
    get:
      operationId: listAdmins
      security: [{session: []}]
      responses:
        '200':
          description: Every admin.
          content:
            application/json:
              schema: {type: array, items: {$ref: '#/components/schemas/Admin'}}
        '401': {$ref: '#/components/responses/Error'}
        '403': {$ref: '#/components/responses/Error'}
    post:
      operationId: createAdmin
      security: [{session: []}]
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              required: [username, password, role]
              properties:
                username: {type: string}
                password: {type: string, minLength: 12, maxLength: 72}
                role: {$ref: '#/components/schemas/Role'}
      responses:
        '201':
          description: The new admin, who must change the password at first login.
          content:
            application/json:
              schema: {$ref: '#/components/schemas/Admin'}
        '400': {$ref: '#/components/responses/Error'}
        '401': {$ref: '#/components/responses/Error'}
        '403': {$ref: '#/components/responses/Error'}
        '409': {$ref: '#/components/responses/Error'}
  /api/v1/admins/{id}:
    parameters:
      - {name: id, in: path, required: true, schema: {type: string}, description: The admin's id or username.}
    patch:
      operationId: updateAdmin
      security: [{session: []}]
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              properties:
                role: {$ref: '#/components/schemas/Role'}
                disabled: {type: boolean, description: Disabling ends the admin's sessions.}
      responses:
        '200':
          description: The admin, changed. One enabled owner always remains; nobody changes their own account.
          content:
            application/json:
              schema: {$ref: '#/components/schemas/Admin'}
        '400': {$ref: '#/components/responses/Error'}
        '401': {$ref: '#/components/responses/Error'}
        '403': {$ref: '#/components/responses/Error'}
        '404': {$ref: '#/components/responses/Error'}
        '409': {$ref: '#/components/responses/Error'}
  /api/v1/users:
    get:
      operationId: listUsers
      security: [{session: []}]
      responses:
        '200':
          description: Every user.
          content:
            application/json:
              schema: {type: array, items: {$ref: '#/components/schemas/User'}}
        '401': {$ref: '#/components/responses/Error'}
        '403': {$ref: '#/components/responses/Error'}
    post:
      operationId: createUser
      security: [{session: []}]
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              required: [username]
              properties:
                username: {type: string}
                displayName: {type: string}
                email: {type: string}
      responses:
        '201':
          description: The new user.
          content:
            application/json:
              schema: {$ref: '#/components/schemas/User'}
        '400': {$ref: '#/components/responses/Error'}
        '401': {$ref: '#/components/responses/Error'}
        '403': {$ref: '#/components/responses/Error'}
        '409': {$ref: '#/components/responses/Error'}
  /api/v1/users/{id}:
    parameters:
      - {name: id, in: path, required: true, schema: {type: string}, description: The user's id or username.}
    get:
      operationId: getUser
      security: [{session: []}]
      responses:
        '200':
          description: The user.
          content:
            application/json:
              schema: {$ref: '#/components/schemas/User'}
        '401': {$ref: '#/components/responses/Error'}
        '403': {$ref: '#/components/responses/Error'}
        '404': {$ref: '#/components/responses/Error'}
    delete:
      operationId: deleteUser
      security: [{session: []}]
      responses:
        '204': {description: Deleted; the user's devices stay enrolled without a user.}
        '401': {$ref: '#/components/responses/Error'}
        '403': {$ref: '#/components/responses/Error'}
        '404': {$ref: '#/components/responses/Error'}
  /api/v1/groups:
    get:
      operationId: listGroups
      security: [{session: []}]
      responses:
        '200':
          description: Every group with its members' usernames.
          content:
            application/json:
              schema: {type: array, items: {$ref: '#/components/schemas/Group'}}
        '401': {$ref: '#/components/responses/Error'}
        '403': {$ref: '#/components/responses/Error'}
    post:
      operationId: createGroup
      security: [{session: []}]
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              required: [name]
              properties:
                name: {type: string}
      responses:
        '201':
          description: The new group.
          content:
            application/json:
              schema: {$ref: '#/components/schemas/Group'}
        '400': {$ref: '#/components/responses/Error'}
        '401': {$ref: '#/components/responses/Error'}
        '403': {$ref: '#/components/responses/Error'}
        '409': {$ref: '#/components/responses/Error'}
  /api/v1/groups/{id}:
    parameters:
      - {name: id, in: path, required: true, schema: {type: string}, description: The group's id or name.}
    get:
      operationId: getGroup
      security: [{session: []}]
      responses:
        '200':
          description: The group.
          content:
            application/json:
              schema: {$ref: '#/components/schemas/Group'}
        '401': {$ref: '#/components/responses/Error'}
        '403': {$ref: '#/components/responses/Error'}
        '404': {$ref: '#/components/responses/Error'}
  /api/v1/groups/{id}/members/{user}:
    parameters:
      - {name: id, in: path, required: true, schema: {type: string}, description: The group's id or name.}
      - {name: user, in: path, required: true, schema: {type: string}, description: The user's id or username.}
    put:
      operationId: addMember
      security: [{session: []}]
      responses:
        '200':
          description: The group with the user in it.
          content:
            application/json:
              schema: {$ref: '#/components/schemas/Group'}
        '401': {$ref: '#/components/responses/Error'}
        '403': {$ref: '#/components/responses/Error'}
        '404': {$ref: '#/components/responses/Error'}
    delete:
      operationId: removeMember
      security: [{session: []}]
      responses:
        '200':
          description: The group without the user.
          content:
            application/json:
              schema: {$ref: '#/components/schemas/Group'}
        '401': {$ref: '#/components/responses/Error'}
        '403': {$ref: '#/components/responses/Error'}
        '404': {$ref: '#/components/responses/Error'}
  /api/v1/enrollment-tokens:
    get:
      operationId: listEnrollmentTokens
      security: [{session: []}]
      responses:
        '200':
          description: Every enrollment token (never its secret).
          content:
            application/json:
              schema: {type: array, items: {$ref: '#/components/schemas/EnrollmentToken'}}
        '401': {$ref: '#/components/responses/Error'}
        '403': {$ref: '#/components/responses/Error'}
    post:
      operationId: createEnrollmentToken
      security: [{session: []}]
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              properties:
                user: {type: string, description: The user the device will belong to (id or username).}
                note: {type: string}
                validHours: {type: number, minimum: 0.02, maximum: 720}
      responses:
        '201':
          description: The token, with its secret shown this once.
          content:
            application/json:
              schema:
                type: object
                required: [token, secret]
                properties:
                  token: {$ref: '#/components/schemas/EnrollmentToken'}
                  secret: {type: string}
        '400': {$ref: '#/components/responses/Error'}
        '401': {$ref: '#/components/responses/Error'}
        '403': {$ref: '#/components/responses/Error'}
        '404': {$ref: '#/components/responses/Error'}
  /api/v1/enroll:
    post:
      operationId: enroll
      security: []
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              required: [token, csr, name]
              properties:
                token: {type: string}
                csr: {type: string, description: A PEM PKCS#10 request for an ECDSA P-256 or P-384 key.}
                name: {type: string}
      responses:
        '201':
          description: The device's client certificate and the Center's CA. A spent token sent again with a request for the same key, before the device's first check-in, gets a new certificate for the same device (an answer lost in transit).
          content:
            application/json:
              schema:
                type: object
                required: [deviceID, certificate, caCertificate]
                properties:
                  deviceID: {type: string}
                  certificate: {type: string}
                  caCertificate: {type: string}
                  userID: {type: string}
                  leaseKey: {type: string, description: Base64 of the Center's Ed25519 lease key.}
        '400': {$ref: '#/components/responses/Error'}
        '401': {$ref: '#/components/responses/Error'}
        '410': {$ref: '#/components/responses/Error'}
  /api/v1/devices:
    get:
      operationId: listDevices
      security: [{session: []}]
      responses:
        '200':
          description: Every device.
          content:
            application/json:
              schema: {type: array, items: {$ref: '#/components/schemas/Device'}}
        '401': {$ref: '#/components/responses/Error'}
        '403': {$ref: '#/components/responses/Error'}
  /api/v1/devices/{id}:
    parameters:
      - {name: id, in: path, required: true, schema: {type: string}}
    get:
      operationId: getDevice
      security: [{session: []}]
      responses:
        '200':
          description: The device and what it last reported.
          content:
            application/json:
              schema: {$ref: '#/components/schemas/Device'}
        '401': {$ref: '#/components/responses/Error'}
        '403': {$ref: '#/components/responses/Error'}
        '404': {$ref: '#/components/responses/Error'}
  /api/v1/devices/{id}/retire:
    parameters:
      - {name: id, in: path, required: true, schema: {type: string}}
    post:
      operationId: retireDevice
      security: [{session: []}]
      responses:
        '200':
          description: The device, retired; its certificate no longer works.
          content:
            application/json:
              schema: {$ref: '#/components/schemas/Device'}
        '401': {$ref: '#/components/responses/Error'}
        '403': {$ref: '#/components/responses/Error'}
        '404': {$ref: '#/components/responses/Error'}
  /api/v1/devices/{id}/measurements:
    parameters:
      - {name: id, in: path, required: true, schema: {type: string}}
    post:
      operationId: approveMeasurements
      description: Approves the measurements the device last reported (an expected update of its Engine, QEMU or kernel); its next check-in gets a policy signed for them.
      security: [{session: []}]
      responses:
        '200':
          description: The device, its measurements approved.
          content:
            application/json:
              schema: {$ref: '#/components/schemas/Device'}
        '401': {$ref: '#/components/responses/Error'}
        '403': {$ref: '#/components/responses/Error'}
        '404': {$ref: '#/components/responses/Error'}
        '409': {$ref: '#/components/responses/Error'}
  /api/v1/audit:
    get:
      operationId: audit
      security: [{session: []}]
      parameters:
        - {name: actor, in: query, schema: {type: string}, description: 'admin:NAME, device:ID or center'}
        - {name: action, in: query, schema: {type: string}}
        - {name: target, in: query, schema: {type: string}}
        - {name: since, in: query, schema: {type: string, format: date-time}}
        - {name: until, in: query, schema: {type: string, format: date-time}}
        - {name: limit, in: query, schema: {type: integer, minimum: 1, maximum: 1000}}
      responses:
        '200':
          description: Entries, newest first.
          content:
            application/json:
              schema: {type: array, items: {$ref: '#/components/schemas/AuditEntry'}}
        '400': {$ref: '#/components/responses/Error'}
        '401': {$ref: '#/components/responses/Error'}
        '403': {$ref: '#/components/responses/Error'}
  /api/v1/device/checkin:
    post:
      operationId: checkIn
      security: [{device: []}]
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: '#/components/schemas/DeviceStatus'}
      responses:
        '200':
          description: The device's desired state.
          content:
            application/json:
              schema:
                type: object
                required: [deviceID, serverTime, checkInInterval, vms, lease, commands]
                properties:
                  deviceID: {type: string}
                  userID: {type: string}
                  serverTime: {type: string, format: date-time}
                  checkInInterval: {type: integer}
                  vms: {type: array, items: {type: object}}
                  lease:
                    type: object
                    required: [payload, signature]
                    properties:
                      payload: {type: string, description: Base64 of the lease terms' JSON (deviceID, issued, expires).}
                      signature: {type: string, description: Base64 Ed25519 signature over the payload's bytes.}
                  commands: {type: array, items: {type: object}}
                  policyKey: {type: string, description: Base64 of the Center's ECDSA P-256 policy key (x ‖ y).}
                  securityPolicy:
                    type: object
                    description: The policy the Center signed for the reported measurements, when it approves them.
                    required: [pcr, pcrValue, policyRef, counterIndex, counterValue, signature]
                    properties:
                      pcr: {type: integer}
                      pcrValue: {type: string}
                      policyRef: {type: string}
                      counterIndex: {type: integer}
                      counterValue: {type: integer}
                      signature: {type: string, description: Base64 of the ECDSA signature r ‖ s over the TPM's approval digest.}
                  measurementVerdict: {type: string}
                  nonce: {type: string, description: 'Lowercase hex; the TPM quotes it at the next check-in, or in the receipt of a wipe this answer delivers.'}
        '400': {$ref: '#/components/responses/Error'}
        '401': {$ref: '#/components/responses/Error'}
        '403': {$ref: '#/components/responses/Error'}
  /api/v1/images:
    get:
      operationId: listImages
      security: [{session: []}]
      responses:
        '200':
          description: Every image with its versions and channels.
          content:
            application/json:
              schema: {type: array, items: {$ref: '#/components/schemas/Image'}}
        '401': {$ref: '#/components/responses/Error'}
        '403': {$ref: '#/components/responses/Error'}
    post:
      operationId: createImage
      security: [{session: []}]
      requestBody:
        required: true
        content:
          application/json:
            schema: {type: object, required: [name], properties: {name: {type: string}}}
      responses:
        '201':
          description: The new image.
          content:
            application/json:
              schema: {$ref: '#/components/schemas/Image'}
        '400': {$ref: '#/components/responses/Error'}
        '401': {$ref: '#/components/responses/Error'}
        '403': {$ref: '#/components/responses/Error'}
        '409': {$ref: '#/components/responses/Error'}
  /api/v1/images/{name}:
    parameters:
      - {name: name, in: path, required: true, schema: {type: string}}
    get:
      operationId: getImage
      security: [{session: []}]
      responses:
        '200':
          description: The image.
          content:
            application/json:
              schema: {$ref: '#/components/schemas/Image'}
        '401': {$ref: '#/components/responses/Error'}
        '403': {$ref: '#/components/responses/Error'}
        '404': {$ref: '#/components/responses/Error'}
  /api/v1/images/{name}/versions:
    parameters:
      - {name: name, in: path, required: true, schema: {type: string}}
    post:
      operationId: addImageVersion
      security: [{session: []}]
      requestBody:
        required: true
        content:
          application/json:
            schema: {type: object, required: [version], properties: {version: {type: string}, notes: {type: string}}}
      responses:
        '201':
          description: The image with the new version.
          content:
            application/json:
              schema: {$ref: '#/components/schemas/Image'}
        '400': {$ref: '#/components/responses/Error'}
        '401': {$ref: '#/components/responses/Error'}
        '403': {$ref: '#/components/responses/Error'}
        '404': {$ref: '#/components/responses/Error'}
        '409': {$ref: '#/components/responses/Error'}
  /api/v1/images/{name}/channels/{channel}:
    parameters:
      - {name: name, in: path, required: true, schema: {type: string}}
      - {name: channel, in: path, required: true, schema: {type: string}}
    put:
      operationId: setChannel
      security: [{session: []}]
      requestBody:
        required: true
        content:
          application/json:
            schema: {type: object, required: [version], properties: {version: {type: string}}}
      responses:
        '200':
          description: The image with the channel pointing at the version (promote or roll back).
          content:
            application/json:
              schema: {$ref: '#/components/schemas/Image'}
        '400': {$ref: '#/components/responses/Error'}
        '401': {$ref: '#/components/responses/Error'}
        '403': {$ref: '#/components/responses/Error'}
        '404': {$ref: '#/components/responses/Error'}
  /api/v1/vms:
    get:
      operationId: listVMs
      security: [{session: []}]
      responses:
        '200':
          description: Every VM definition.
          content:
            application/json:
              schema: {type: array, items: {$ref: '#/components/schemas/VMDefinition'}}
        '401': {$ref: '#/components/responses/Error'}
        '403': {$ref: '#/components/responses/Error'}
    post:
      operationId: createVM
      security: [{session: []}]
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: '#/components/schemas/VMDefinitionInput'}
      responses:
        '201':
          description: The new VM definition.
          content:
            application/json:
              schema: {$ref: '#/components/schemas/VMDefinition'}
        '400': {$ref: '#/components/responses/Error'}
        '401': {$ref: '#/components/responses/Error'}
        '403': {$ref: '#/components/responses/Error'}
        '404': {$ref: '#/components/responses/Error'}
        '409': {$ref: '#/components/responses/Error'}
  /api/v1/vms/{name}:
    parameters:
      - {name: name, in: path, required: true, schema: {type: string}}
    get:
      operationId: getVM
      security: [{session: []}]
      responses:
        '200':
          description: The VM definition.
          content:
            application/json:
              schema: {$ref: '#/components/schemas/VMDefinition'}
        '401': {$ref: '#/components/responses/Error'}
        '403': {$ref: '#/components/responses/Error'}
        '404': {$ref: '#/components/responses/Error'}
    put:
      operationId: updateVM
      security: [{session: []}]
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: '#/components/schemas/VMDefinitionInput'}
      responses:
        '200':
          description: The changed VM definition.
          content:
            application/json:
              schema: {$ref: '#/components/schemas/VMDefinition'}
        '400': {$ref: '#/components/responses/Error'}
        '401': {$ref: '#/components/responses/Error'}
        '403': {$ref: '#/components/responses/Error'}
        '404': {$ref: '#/components/responses/Error'}
    delete:
      operationId: deleteVM
      security: [{session: []}]
      responses:
        '204': {description: Deleted.}
        '401': {$ref: '#/components/responses/Error'}
        '403': {$ref: '#/components/responses/Error'}
        '404': {$ref: '#/components/responses/Error'}
  /api/v1/vms/{name}/assignments/{kind}/{target}:
    parameters:
      - {name: name, in: path, required: true, schema: {type: string}}
      - {name: kind, in: path, required: true, schema: {type: string}}
      - {name: target, in: path, required: true, schema: {type: string}}
    put:
      operationId: assignVM
      security: [{session: []}]
      responses:
        '200':
          description: The VM definition, assigned (kind is user or group).
          content:
            application/json:
              schema: {$ref: '#/components/schemas/VMDefinition'}
        '400': {$ref: '#/components/responses/Error'}
        '401': {$ref: '#/components/responses/Error'}
        '403': {$ref: '#/components/responses/Error'}
        '404': {$ref: '#/components/responses/Error'}
    delete:
      operationId: unassignVM
      security: [{session: []}]
      responses:
        '200':
          description: The VM definition, unassigned.
          content:
            application/json:
              schema: {$ref: '#/components/schemas/VMDefinition'}
        '400': {$ref: '#/components/responses/Error'}
        '401': {$ref: '#/components/responses/Error'}
        '403': {$ref: '#/components/responses/Error'}
        '404': {$ref: '#/components/responses/Error'}
  /api/v1/policies:
    get:
      operationId: listPolicies
      security: [{session: []}]
      responses:
        '200':
          description: Policies by scope (group:NAME, vm:NAME).
          content:
            application/json:
              schema: {type: object, additionalProperties: {$ref: '#/components/schemas/Policy'}}
        '401': {$ref: '#/components/responses/Error'}
        '403': {$ref: '#/components/responses/Error'}
  /api/v1/policies/{scope}:
    parameters:
      - {name: scope, in: path, required: true, schema: {type: string}}
    put:
      operationId: setPolicy
      security: [{session: []}]
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: '#/components/schemas/Policy'}
      responses:
        '200':
          description: The policy, set.
          content:
            application/json:
              schema: {$ref: '#/components/schemas/Policy'}
        '400': {$ref: '#/components/responses/Error'}
        '401': {$ref: '#/components/responses/Error'}
        '403': {$ref: '#/components/responses/Error'}
        '404': {$ref: '#/components/responses/Error'}
    delete:
      operationId: deletePolicy
      security: [{session: []}]
      responses:
        '204': {description: Removed.}
        '400': {$ref: '#/components/responses/Error'}
        '401': {$ref: '#/components/responses/Error'}
        '403': {$ref: '#/components/responses/Error'}
        '404': {$ref: '#/components/responses/Error'}
  /api/v1/users/{id}/desktops:
    parameters:
      - {name: id, in: path, required: true, schema: {type: string}}
    get:
      operationId: userDesktops
      security: [{session: []}]
      responses:
        '200':
          description: The VMs the user gets, with resolved versions and policies.
          content:
            application/json:
              schema: {type: array, items: {type: object}}
        '401': {$ref: '#/components/responses/Error'}
        '403': {$ref: '#/components/responses/Error'}
        '404': {$ref: '#/components/responses/Error'}
  /api/v1/devices/{id}/commands:
    parameters:
      - {name: id, in: path, required: true, schema: {type: string}}
    get:
      operationId: deviceCommands
      security: [{session: []}]
      responses:
        '200':
          description: The device's commands, newest first.
          content:
            application/json:
              schema: {type: array, items: {$ref: '#/components/schemas/Command'}}
        '401': {$ref: '#/components/responses/Error'}
        '403': {$ref: '#/components/responses/Error'}
        '404': {$ref: '#/components/responses/Error'}
    post:
      operationId: issueCommand
      security: [{session: []}]
      requestBody:
        required: true
        content:
          application/json:
            schema: {type: object, required: [kind], properties: {kind: {type: string, enum: [lock, unlock, wipe, restartVM, resetPersonalVM, collectDiagnostics]}, vm: {type: string}}}
      responses:
        '201':
          description: The command, pending or awaiting a second admin's approval (wipe).
          content:
            application/json:
              schema: {$ref: '#/components/schemas/Command'}
        '400': {$ref: '#/components/responses/Error'}
        '401': {$ref: '#/components/responses/Error'}
        '403': {$ref: '#/components/responses/Error'}
        '404': {$ref: '#/components/responses/Error'}
        '409': {$ref: '#/components/responses/Error'}
  /api/v1/commands:
    get:
      operationId: listCommands
      security: [{session: []}]
      responses:
        '200':
          description: Recent commands, newest first.
          content:
            application/json:
              schema: {type: array, items: {$ref: '#/components/schemas/Command'}}
        '401': {$ref: '#/components/responses/Error'}
        '403': {$ref: '#/components/responses/Error'}
  /api/v1/commands/{id}/diagnostics:
    parameters:
      - {name: id, in: path, required: true, schema: {type: string}}
    get:
      operationId: getDiagnostics
      security: [{session: []}]
      responses:
        '200':
          description: The log bundle the device uploaded for this collectDiagnostics command.
          content:
            application/json:
              schema:
                type: object
                required: [commandID, deviceID, uploaded, size, bundle]
                properties:
                  commandID: {type: string}
                  deviceID: {type: string}
                  uploaded: {type: string, format: date-time}
                  size: {type: integer}
                  bundle: {$ref: '#/components/schemas/DiagnosticsBundle'}
        '401': {$ref: '#/components/responses/Error'}
        '403': {$ref: '#/components/responses/Error'}
        '404': {$ref: '#/components/responses/Error'}
  /api/v1/commands/{id}/approve:
    parameters:
      - {name: id, in: path, required: true, schema: {type: string}}
    post:
      operationId: approveCommand
      security: [{session: []}]
      responses:
        '200':
          description: The wipe, approved by a second admin.
          content:
            application/json:
              schema: {$ref: '#/components/schemas/Command'}
        '401': {$ref: '#/components/responses/Error'}
        '403': {$ref: '#/components/responses/Error'}
        '404': {$ref: '#/components/responses/Error'}
        '409': {$ref: '#/components/responses/Error'}
  /api/v1/commands/{id}/cancel:
    parameters:
      - {name: id, in: path, required: true, schema: {type: string}}
    post:
      operationId: cancelCommand
      security: [{session: []}]
      responses:
        '200':
          description: The command, cancelled.
          content:
            application/json:
              schema: {$ref: '#/components/schemas/Command'}
        '401': {$ref: '#/components/responses/Error'}
        '403': {$ref: '#/components/responses/Error'}
        '404': {$ref: '#/components/responses/Error'}
        '409': {$ref: '#/components/responses/Error'}
  /api/v1/settings:
    get:
      operationId: getSettings
      security: [{session: []}]
      responses:
        '200':
          description: Center-wide settings.
          content:
            application/json:
              schema: {$ref: '#/components/schemas/Settings'}
        '401': {$ref: '#/components/responses/Error'}
        '403': {$ref: '#/components/responses/Error'}
    put:
      operationId: setSettings
      security: [{session: []}]
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: '#/components/schemas/Settings'}
      responses:
        '200':
          description: The settings, changed.
          content:
            application/json:
              schema: {$ref: '#/components/schemas/Settings'}
        '400': {$ref: '#/components/responses/Error'}
        '401': {$ref: '#/components/responses/Error'}
        '403': {$ref: '#/components/responses/Error'}
  /api/v1/device/commands/{id}:
    parameters:
      - {name: id, in: path, required: true, schema: {type: string}}
    post:
      operationId: reportCommand
      security: [{device: []}]
      requestBody:
        required: true
        content:
          application/json:
            schema: {type: object, required: [state], properties: {state: {type: string, enum: [acknowledged, completed, failed]}, result: {type: string}}}
      responses:
        '200':
          description: The command with the device's report.
          content:
            application/json:
              schema: {$ref: '#/components/schemas/Command'}
        '400': {$ref: '#/components/responses/Error'}
        '401': {$ref: '#/components/responses/Error'}
        '403': {$ref: '#/components/responses/Error'}
        '404': {$ref: '#/components/responses/Error'}
        '409': {$ref: '#/components/responses/Error'}
  /api/v1/device/certificate:
    post:
      operationId: renewCertificate
      security: [{device: []}]
      description: A new client certificate for the calling device, for the key its request holds (its own or a new one). The certificate the device called with stays valid until it expires, so a lost answer costs nothing; the device's next renewal may present either.
      requestBody:
        required: true
        content:
          application/json:
            schema: {type: object, required: [csr], properties: {csr: {type: string, description: A PEM PKCS#10 request for an ECDSA P-256 or P-384 key.}}}
      responses:
        '200':
          description: The new certificate and the Center's CA.
          content:
            application/json:
              schema: {type: object, required: [certificate, caCertificate], properties: {certificate: {type: string}, caCertificate: {type: string}}}
        '400': {$ref: '#/components/responses/Error'}
        '401': {$ref: '#/components/responses/Error'}
        '403': {$ref: '#/components/responses/Error'}
  /api/v1/device/commands/{id}/diagnostics:
    parameters:
      - {name: id, in: path, required: true, schema: {type: string}}
    put:
      operationId: uploadDiagnostics
      security: [{device: []}]
      description: The device uploads the bundle of a collectDiagnostics command it is carrying out (at most 200 KiB of JSON); a second upload replaces the first.
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: '#/components/schemas/DiagnosticsBundle'}
      responses:
        '200':
          description: Kept.
          content:
            application/json:
              schema: {type: object, required: [commandID, size, uploaded], properties: {commandID: {type: string}, size: {type: integer}, uploaded: {type: string, format: date-time}}}
        '400': {$ref: '#/components/responses/Error'}
        '401': {$ref: '#/components/responses/Error'}
        '403': {$ref: '#/components/responses/Error'}
        '404': {$ref: '#/components/responses/Error'}
        '409': {$ref: '#/components/responses/Error'}
        '413': {$ref: '#/components/responses/Error'}
"""#
}
