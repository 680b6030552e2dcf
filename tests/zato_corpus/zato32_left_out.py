# -*- coding: utf-8 -*-

# Zato 3.2's connection kinds this server leaves out, as Zato's services reach them: HL7 FHIR
# (its healthcare docs: `with self.out.hl7.fhir[conn_name].conn.client() as client`), Twilio
# SMS, Vault, Kafka, and its REST facade, self.rest.
from zato.server.service import Service


class Patients(Service):
    name = 'zato32.left-out.patients'

    def handle(self):
        kind = self.request.payload['kind']
        if kind == 'hl7':
            with self.out.hl7.fhir['mxfhir.read'].conn.client() as client:
                self.response.payload = {'patients': client.resources('Patient')}
        elif kind == 'sms':
            self.out.sms.twilio.get('alerts').conn.send('Patient admitted', to='+15550100')
        elif kind == 'vault':
            self.out.vault.get('secrets')
        elif kind == 'kafka':
            self.out.kafka.get('events')
        else:
            self.rest.crm.get(self.cid)
